// Models: the learnable networks. Owns the stage-1 E(3)-equivariant Hamiltonian network
// (`HamiltonianModel`, the DeepH-E3 design on our Autograd engine and SO3 layers), its
// configuration (`ModelConfig`, JSON with documented defaults), the batched graph input it runs on
// (`StructureGraph` → `GraphBatch`: species, edges, spherical harmonics and radial bases), and the
// grouping of Hamiltonian blocks by element pair (`BlockGroup`). Stage 2 will live here too and
// consumes `ModelOutput.nodeFeatures` / `edgeFeatures`.
//
// Why blocks are grouped: every block of one element pair has the same shape and the same irreps,
// so one equivariant head per pair maps edge features to irreps and one fixed Clebsch–Gordan
// matrix (`AtomPairDecomposition`, written as a dense matrix) turns irreps into the block. That
// keeps the whole forward pass a handful of batched matrix products.
import Foundation
import Structures

/// Errors of model construction and input preparation; descriptions name the field or structure.
public enum ModelError: Error, CustomStringConvertible, Equatable {
    case badConfig(field: String, message: String)
    case unknownElement(structure: String, atomicNumber: Int)
    case basisMismatch(structure: String, element: String, expected: [Int], got: [Int])
    case badInput(String)

    public var description: String {
        switch self {
        case let .badConfig(field, message): return "model config: \(field): \(message)"
        case let .unknownElement(structure, z):
            return "\(structure): element \(Elements.symbol(of: z) ?? "Z=\(z)") is not in the model's basis (the model was trained without it)"
        case let .basisMismatch(structure, element, expected, got):
            return "\(structure): element \(element) has orbital shells l = \(got), the model was trained with \(expected)"
        case let .badInput(m): return m
        }
    }
}

/// Hyper-parameters of the stage-1 network. Every key has a default (DeepH-E3's where it has one);
/// `basis` is filled in from the training data. JSON keys are the property names in snake_case.
public struct ModelConfig: Codable, Equatable, Sendable {
    /// Hidden node and edge irreps: DeepH-E3's irreps_mid (64x0e+32x1o+16x2e+8x3o+8x4e) with
    /// every L ≥ 1 also in the other parity (DeepH-E3 adds those in its last layer), so every
    /// block irrep (parity (−1)^(l1+l2)) up to f orbitals has channels to come from. No 0o: no
    /// block needs it, and it is zero by symmetry for every achiral structure, where the layer
    /// norm would only amplify round-off.
    public var irreps = "64x0e+32x1o+32x1e+16x2e+16x2o+8x3o+8x3e+8x4e+8x4o"
    /// Spherical harmonics of the edge direction, l = 0…shLmax.
    public var shLmax = 4
    /// Interaction blocks (edge update + node update each).
    public var layers = 3
    /// Radial cutoff in Å: the radial basis is multiplied by a smooth envelope that vanishes here.
    public var cutoff = 8.0
    /// "bessel" or "gaussian".
    public var radialBasis = "bessel"
    public var radialCount = 16
    /// Width of the MLPs that turn the radial basis into tensor-product weights.
    public var radialHidden = 64
    /// Neighbour-count normalisation of node aggregation (messages are summed, then divided by
    /// √avgNeighbors); set from the training data when nil.
    public var avgNeighbors: Double?
    /// Seed of the parameter initialisation.
    public var seed: UInt64 = 0
    /// Initial weights of the output heads are multiplied by this (small: start at the mean).
    public var headInitScale = 0.1
    /// Element symbol → l of each orbital shell, in stored order (from the training data).
    public var basis: [String: [Int]] = [:]

    public init() {}

    enum CodingKeys: String, CodingKey, CaseIterable {
        case irreps, shLmax = "sh_lmax", layers, cutoff, radialBasis = "radial_basis", radialCount = "radial_count"
        case radialHidden = "radial_hidden", avgNeighbors = "avg_neighbors", seed, headInitScale = "head_init_scale", basis
    }

    /// The JSON keys a configuration file may use (unknown ones are rejected).
    public static var jsonKeys: [String] { CodingKeys.allCases.map(\.rawValue) }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = ModelConfig.defaults
        irreps = try c.decodeIfPresent(String.self, forKey: .irreps) ?? d.irreps
        shLmax = try c.decodeIfPresent(Int.self, forKey: .shLmax) ?? d.shLmax
        layers = try c.decodeIfPresent(Int.self, forKey: .layers) ?? d.layers
        cutoff = try c.decodeIfPresent(Double.self, forKey: .cutoff) ?? d.cutoff
        radialBasis = try c.decodeIfPresent(String.self, forKey: .radialBasis) ?? d.radialBasis
        radialCount = try c.decodeIfPresent(Int.self, forKey: .radialCount) ?? d.radialCount
        radialHidden = try c.decodeIfPresent(Int.self, forKey: .radialHidden) ?? d.radialHidden
        avgNeighbors = try c.decodeIfPresent(Double.self, forKey: .avgNeighbors)
        seed = try c.decodeIfPresent(UInt64.self, forKey: .seed) ?? d.seed
        headInitScale = try c.decodeIfPresent(Double.self, forKey: .headInitScale) ?? d.headInitScale
        basis = try c.decodeIfPresent([String: [Int]].self, forKey: .basis) ?? [:]
    }

    public static let defaults = ModelConfig()

    /// Checks ranges; names the offending key.
    public func validate() throws {
        guard (0 ... 8).contains(shLmax) else { throw ModelError.badConfig(field: "sh_lmax", message: "must be 0…8, got \(shLmax)") }
        guard layers >= 1 else { throw ModelError.badConfig(field: "layers", message: "must be ≥ 1, got \(layers)") }
        guard cutoff > 0, cutoff.isFinite else { throw ModelError.badConfig(field: "cutoff", message: "must be a positive number of Å, got \(cutoff)") }
        guard ["bessel", "gaussian"].contains(radialBasis) else {
            throw ModelError.badConfig(field: "radial_basis", message: "must be \"bessel\" or \"gaussian\", got \"\(radialBasis)\"")
        }
        guard radialCount >= 1 else { throw ModelError.badConfig(field: "radial_count", message: "must be ≥ 1, got \(radialCount)") }
        guard radialHidden >= 1 else { throw ModelError.badConfig(field: "radial_hidden", message: "must be ≥ 1, got \(radialHidden)") }
        guard headInitScale > 0, headInitScale.isFinite else {
            throw ModelError.badConfig(field: "head_init_scale", message: "must be positive, got \(headInitScale)")
        }
        if let a = avgNeighbors, !(a > 0 && a.isFinite) {
            throw ModelError.badConfig(field: "avg_neighbors", message: "must be positive, got \(a)")
        }
        for (symbol, ls) in basis {
            guard Elements.atomicNumber(of: symbol) != nil else { throw ModelError.badConfig(field: "basis", message: "unknown element \"\(symbol)\"") }
            guard !ls.isEmpty, ls.allSatisfy({ (0 ... 4).contains($0) }) else {
                throw ModelError.badConfig(field: "basis.\(symbol)", message: "shells must be a non-empty list of l in 0…4, got \(ls)")
            }
        }
    }

    /// Atomic number → shells, from `basis`.
    public var shells: [Int: OrbitalShells] {
        var out: [Int: OrbitalShells] = [:]
        for (s, ls) in basis { if let z = Elements.atomicNumber(of: s) { out[z] = OrbitalShells(ls) } }
        return out
    }

    /// The model's elements in ascending atomic number (the one-hot order).
    public var elements: [Int] { shells.keys.sorted() }
}

/// A group of Hamiltonian blocks that share shape and irreps: on-site blocks of one element, or
/// off-site blocks (i ≠ j or R ≠ 0) of one ordered element pair.
public struct BlockGroup: Hashable, Comparable, Sendable, CustomStringConvertible {
    public let onsite: Bool
    public let zi: Int, zj: Int

    public init(onsite: Bool, zi: Int, zj: Int) { self.onsite = onsite; self.zi = zi; self.zj = zj }

    public static func < (a: BlockGroup, b: BlockGroup) -> Bool {
        (a.onsite ? 0 : 1, a.zi, a.zj) < (b.onsite ? 0 : 1, b.zi, b.zj)
    }

    public var description: String {
        let si = Elements.symbol(of: zi) ?? "\(zi)", sj = Elements.symbol(of: zj) ?? "\(zj)"
        return onsite ? "on:\(si)" : "off:\(si)-\(sj)"
    }

    /// Parses `description`'s form: "on:C" (on-site blocks of C) or "off:C-N" (C row, N column).
    public init?(name: String) {
        func z(_ s: Substring) -> Int? { Elements.atomicNumber(of: String(s)) }
        if name.hasPrefix("on:"), let a = z(name.dropFirst(3)) { self.init(onsite: true, zi: a, zj: a); return }
        guard name.hasPrefix("off:") else { return nil }
        let pair = name.dropFirst(4).split(separator: "-", omittingEmptySubsequences: false)
        guard pair.count == 2, let a = z(pair[0]), let b = z(pair[1]) else { return nil }
        self.init(onsite: false, zi: a, zj: b)
    }

    /// Every group the elements can produce, sorted.
    public static func all(elements: [Int]) -> [BlockGroup] {
        elements.map { BlockGroup(onsite: true, zi: $0, zj: $0) }
            + elements.flatMap { a in elements.map { BlockGroup(onsite: false, zi: a, zj: $0) } }
    }
}
