// Parameters.swift: named trainable tensors with deterministic seeded initialisation, freezing,
// and flat views of all gradients/values (the buffer a data-parallel run all-reduces). Also the
// small layers built on them (Linear, LayerNorm, MLP).

/// How a parameter's initial values are drawn. Fan-in/fan-out are the first/last axis sizes.
public enum Initializer: Sendable, Equatable {
    case zeros, ones
    case constant(Double)
    case uniform(bound: Double)          // U(−bound, bound)
    case normal(std: Double)
    case fanInUniform                     // U(−1/√fan_in, 1/√fan_in), PyTorch's nn.Linear default
    case glorotUniform                    // U(−√(6/(fan_in+fan_out)), …)
}

/// An ordered, named collection of parameters. Each parameter's random stream is
/// SplitMix64(seed ⊕ FNV-1a(name)), so values depend only on (seed, name, shape) — adding a
/// parameter never changes the others.
public final class ParameterSet<T: Scalar> {
    public let seed: UInt64
    public private(set) var names: [String] = []
    private var byName: [String: Tensor<T>] = [:]
    /// The tensors in creation order (optimisers walk them every step: no name lookups).
    public private(set) var tensors: [Tensor<T>] = []

    public init(seed: UInt64) { self.seed = seed }

    /// Creates and registers a parameter; names must be unique.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    @discardableResult
    public func create(_ name: String, shape: [Int], initializer: Initializer) throws -> Tensor<T> {
        guard !name.isEmpty, byName[name] == nil else {
            throw TensorError("ParameterSet", name.isEmpty ? "empty parameter name" : "parameter '\(name)' already exists")
        }
        guard shape.allSatisfy({ $0 >= 0 }) else { throw TensorError("ParameterSet", "negative dimension in \(shape) for '\(name)'") }
        let t = Tensor<T>(zeros: shape, requiresGrad: true, name: name)
        var rng = SplitMix64(seed: seed ^ SplitMix64.hash(name))
        let fanIn = Double(shape.first ?? 1), fanOut = Double(shape.last ?? 1)
        for i in 0..<t.count {
            let v: Double
            switch initializer {
            case .zeros: v = 0
            case .ones: v = 1
            case .constant(let c): v = c
            case .uniform(let b): v = (2 * rng.nextUnit() - 1) * b
            case .normal(let s): v = rng.nextNormal() * s
            case .fanInUniform: v = (2 * rng.nextUnit() - 1) / max(fanIn, 1).squareRoot()
            case .glorotUniform: v = (2 * rng.nextUnit() - 1) * (6 / max(fanIn + fanOut, 1)).squareRoot()
            }
            t.data[i] = T(v)
        }
        names.append(name)
        byName[name] = t
        tensors.append(t)
        return t
    }

    public subscript(_ name: String) -> Tensor<T>? { byName[name] }
    /// Parameters that currently train (not frozen), in creation order. (A closure, not the key
    /// path: a key path is resolved at run time per element, ~20 µs per call on a hybrid's ~1000
    /// tensors, and a training step asks several times. Inlinable so that callers in other modules
    /// get it specialised: the generic filter went through protocol witnesses per element.)
    @inlinable public var trainable: [Tensor<T>] { tensors.filter { $0.requiresGrad } }
    public var scalarCount: Int { tensors.reduce(0) { $0 + $1.count } }

    /// Frozen parameters get no gradient and are skipped by optimisers (stage 2 freezes stage 1).
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func freeze(prefix: String = "") { for t in tensors where t.name.hasPrefix(prefix) { t.requiresGrad = false; t.grad = nil } }
    public func unfreeze(prefix: String = "") { for t in tensors where t.name.hasPrefix(prefix) { t.requiresGrad = true } }

    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func zeroGrad() { for t in tensors { t.grad = nil } }

    /// All trainable gradients concatenated in creation order (zeros where none was computed):
    /// the buffer to all-reduce across ranks.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func flattenGradients() -> [T] {
        var flat: [T] = []
        flat.reserveCapacity(trainable.reduce(0) { $0 + $1.count })
        for t in trainable { if let g = t.grad { flat += g } else { flat += [T](repeating: 0, count: t.count) } }
        return flat
    }

    /// Inverse of flattenGradients (e.g. after the all-reduce).
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func loadGradients(_ flat: [T]) throws {
        let params = trainable
        let total = params.reduce(0) { $0 + $1.count }
        guard flat.count == total else {
            throw TensorError("loadGradients", "flat buffer has \(flat.count) values, trainable parameters have \(total)")
        }
        var offset = 0
        for t in params { t.grad = Array(flat[offset..<(offset + t.count)]); offset += t.count }
    }

    /// Copies values from another set with the same names and shapes (e.g. EMA weights or a
    /// checkpoint of a sibling model).
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func copyValues(from other: ParameterSet<T>) throws {
        for name in names {
            guard let src = other[name], src.shape == byName[name]!.shape else {
                throw TensorError("copyValues", "parameter '\(name)' missing or of different shape in the source set")
            }
            byName[name]!.data = src.data
        }
    }
}

/// y = x·W + b with W [in, out] (note: transposed relative to PyTorch's weight) and b [out].
public struct Linear<T: Scalar> {
    public let weight: Tensor<T>
    public let bias: Tensor<T>?

    public init(_ params: ParameterSet<T>, name: String, inFeatures: Int, outFeatures: Int, bias: Bool = true,
                initializer: Initializer = .fanInUniform) throws {
        weight = try params.create(name + ".weight", shape: [inFeatures, outFeatures], initializer: initializer)
        if bias {
            // PyTorch's default bias init: U(−1/√fan_in, 1/√fan_in) over [out].
            self.bias = try params.create(name + ".bias", shape: [outFeatures], initializer: .uniform(bound: 1 / Double(max(inFeatures, 1)).squareRoot()))
        } else {
            self.bias = nil
        }
    }

    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func callAsFunction(_ x: Tensor<T>) throws -> Tensor<T> { try x.linear(weight: weight, bias: bias) }
}

public struct LayerNorm<T: Scalar> {
    public let gamma: Tensor<T>, beta: Tensor<T>
    public let epsilon: T
    public init(_ params: ParameterSet<T>, name: String, features: Int, epsilon: T = 1e-5) throws {
        gamma = try params.create(name + ".gamma", shape: [features], initializer: .ones)
        beta = try params.create(name + ".beta", shape: [features], initializer: .zeros)
        self.epsilon = epsilon
    }
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func callAsFunction(_ x: Tensor<T>) throws -> Tensor<T> { try x.layerNorm(gamma: gamma, beta: beta, epsilon: epsilon) }
}

public enum Activation: String, Sendable { case silu, tanh, sigmoid, softplus, relu, identity }

extension Tensor {
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func activated(_ a: Activation) -> Tensor {
        switch a {
        case .silu: return silu()
        case .tanh: return tanh()
        case .sigmoid: return sigmoid()
        case .softplus: return softplus()
        case .relu: return relu()
        case .identity: return self
        }
    }
}

/// Linear layers with an activation between them (none after the last).
public struct MLP<T: Scalar> {
    public let layers: [Linear<T>]
    public let activation: Activation

    /// `widths` = [in, hidden…, out]; layers are named "\(name).0", "\(name).1", ….
    public init(_ params: ParameterSet<T>, name: String, widths: [Int], activation: Activation = .silu) throws {
        guard widths.count >= 2 else { throw TensorError("MLP", "needs at least input and output widths, got \(widths)") }
        layers = try (0..<(widths.count - 1)).map {
            try Linear(params, name: "\(name).\($0)", inFeatures: widths[$0], outFeatures: widths[$0 + 1])
        }
        self.activation = activation
    }

    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func callAsFunction(_ x: Tensor<T>) throws -> Tensor<T> {
        var h = x
        for (i, layer) in layers.enumerated() {
            h = try layer(h)
            if i < layers.count - 1 { h = h.activated(activation) }
        }
        return h
    }
}
