// Checkpoint.swift: saving and restoring training state in HDF5 — parameters, Adam moments and
// step counts, schedule state, EMA shadows and caller metadata — so a resumed run continues
// bit-for-bit. Values are stored in their own precision (float32 stays float32), counters and
// learning rates as float64 attributes (exact for integers below 2⁵³). Files are written to a
// temporary path and renamed, so a crash never leaves a half-written checkpoint.
//
// Layout: /<part>/... per part; parameters flat ("values" + "shapes", see ParameterSet);
//         Adam's state flat too ("names", "steps", "counts", "m", "v"; see below).
import Foundation
import HDF5Kit
import Linalg

/// Something whose state can go into a checkpoint group.
public protocol Checkpointable {
    func save(to file: HDF5File, group: String) throws
    func load(from file: HDF5File, group: String) throws
}

/// A checkpoint or parameter file that does not match what the program expects.
public struct CheckpointError: Error, CustomStringConvertible, Equatable {
    public var file: String, field: String, message: String
    public init(file: String, field: String, message: String) { self.file = file; self.field = field; self.message = message }
    public var description: String { "\(file): \(field): \(message)" }
}

func readTensorValues<T: Scalar>(_ file: HDF5File, _ path: String, expecting shape: [Int]) throws -> [T] {
    guard file.exists(path) else { throw CheckpointError(file: file.path, field: path, message: "missing") }
    let kind = try file.datasetInfo(path).kind
    let expected: HDF5ScalarKind = T.self == Float.self ? .float32 : .float64
    guard kind == expected else {
        throw CheckpointError(file: file.path, field: path, message: "stored as \(kind), expected \(T.typeName)")
    }
    let a = try T.readArray(file, path)
    guard a.shape.reduce(1, *) == shape.reduce(1, *), a.shape == shape || (shape.isEmpty && a.shape == [1]) else {
        throw CheckpointError(file: file.path, field: path, message: "shape \(a.shape), expected \(shape)")
    }
    return a.values
}

func writeTensorValues<T: Scalar>(_ file: HDF5File, _ path: String, _ values: [T], shape: [Int]) throws {
    try T.writeArray(file, path, values, shape: shape.isEmpty ? [1] : shape)
}

func scalarAttribute(_ file: HDF5File, _ name: String, of object: String) throws -> [Double] {
    guard (try? file.attributeNames(of: object))?.contains(name) == true else {
        throw CheckpointError(file: file.path, field: "\(object)@\(name)", message: "missing attribute")
    }
    return try file.doubleAttribute(name, of: object)
}

// Parameters are stored flat: every tensor's values, in the order of the "names" attribute, in one
// dataset "values", and their shapes in "shapes" (per tensor: rank, then the dimensions). A
// dataset per tensor costs about 400 bytes of HDF5 headers, more than most tensors hold (a
// five-element hybrid has 3 400 tensors: 1.4 MB of headers on 3.7 MB of values). Files of the
// earlier layout (one dataset per tensor, named by the tensor) are still read.
extension ParameterSet: Checkpointable {
    public func save(to file: HDF5File, group: String) throws {
        try file.createGroup(group)
        try file.setAttribute("names", string: names.joined(separator: "\n"), on: group)
        try file.setAttribute("dtype", string: T.typeName, on: group)
        guard !tensors.isEmpty else { return }
        var values: [T] = [], shapes: [Int64] = []
        values.reserveCapacity(tensors.reduce(0) { $0 + $1.count })
        for t in tensors {
            values += t.data
            shapes.append(Int64(t.shape.count)); shapes += t.shape.map(Int64.init)
        }
        try writeTensorValues(file, "\(group)/values", values, shape: [values.count])
        try file.write("\(group)/shapes", int64s: shapes, shape: [shapes.count])
    }

    /// Loads every parameter of this set by name; extra tensors in the file are ignored so a
    /// stage-2 model can load its frozen stage-1 parameters from a stage-1 checkpoint.
    public func load(from file: HDF5File, group: String) throws {
        guard file.exists("\(group)/values") else {
            for t in tensors { t.data = try readTensorValues(file, "\(group)/\(t.name)", expecting: t.shape) }
            return
        }
        let stored = try FlatTensors(file: file, group: group)
        let values: [T] = try readTensorValues(file, "\(group)/values", expecting: [stored.total])
        for t in tensors {
            guard let (offset, shape) = stored.index[t.name] else { throw CheckpointError(file: file.path, field: "\(group)/\(t.name)", message: "missing") }
            guard shape == t.shape else {
                throw CheckpointError(file: file.path, field: "\(group)/\(t.name)", message: "shape \(shape), expected \(t.shape)")
            }
            t.data = Array(values[offset ..< offset + t.count])
        }
    }
}

extension Checkpoint {
    /// Every Float parameter stored in `group` of the checkpoint at `path`, by name, in either
    /// layout (for tools and tests that compare checkpoints without building the model).
    public static func storedParameters(in path: String, group: String) throws -> [String: [Float]] {
        let file = try HDF5File(readingAt: path)
        let names = try file.stringAttribute("names", of: group).split(separator: "\n").map(String.init)
        guard file.exists("\(group)/values") else {
            return try Dictionary(uniqueKeysWithValues: names.map { ($0, try file.readFloats("\(group)/\($0)").values) })
        }
        let stored = try FlatTensors(file: file, group: group)
        let values: [Float] = try readTensorValues(file, "\(group)/values", expecting: [stored.total])
        return stored.index.mapValues { Array(values[$0.offset ..< $0.offset + $0.shape.reduce(1, *)]) }
    }
}

/// The table of a flat parameter group: each name's offset into "values" and its shape, checked
/// (ranks and dimensions bounded, names unique, one shape per name) before anything is allocated.
struct FlatTensors {
    var index: [String: (offset: Int, shape: [Int])] = [:]
    var total = 0

    init(file: HDF5File, group: String) throws {
        func bad(_ field: String, _ message: String) -> CheckpointError { CheckpointError(file: file.path, field: "\(group)\(field)", message: message) }
        let names = try file.stringAttribute("names", of: group).split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let shapes = try file.readInt64s("\(group)/shapes").values
        var k = 0
        for name in names {
            guard k < shapes.count else { throw bad("/shapes", "ends before the shape of \(name) (\(names.count) names)") }
            let rank = shapes[k]
            guard (0 ... 8).contains(rank), k + 1 + Int(rank) <= shapes.count else { throw bad("/shapes", "rank \(rank) of \(name) is not 0…8 or runs past the end") }
            let dims = shapes[(k + 1) ..< (k + 1 + Int(rank))]
            guard dims.allSatisfy({ (0 ... Int64(Int32.max)).contains($0) }) else { throw bad("/shapes", "dimensions \(Array(dims)) of \(name) out of range") }
            let count = dims.reduce(1) { $0.multipliedReportingOverflow(by: Int($1)).overflow ? Int.max : $0 * Int($1) }
            guard count <= Int(Int32.max), index[name] == nil else { throw bad("@names", "\(name) is listed twice or holds more than 2³¹ values") }
            index[name] = (total, dims.map(Int.init))
            total += count
            k += 1 + Int(rank)
        }
        guard k == shapes.count else { throw bad("/shapes", "\(shapes.count - k) values left after the \(names.count) shapes") }
    }
}

// Adam's state is stored flat like the parameters: attribute "names" (the parameters with a state,
// sorted, one per line), "steps" and "counts" (per name: its step count and its number of values,
// int64) and the moments "m" and "v", every name's values one after the other in the order of
// "names". The earlier layout — a dataset per tensor and moment (/m/<name>, /v/<name>, the step an
// attribute of /m/<name>), ~50 µs of libhdf5 each, ~1150 of them in a stage-1 checkpoint of the
// benchmark network — has no "names" attribute on the group, and is still read.
extension Adam: Checkpointable {
    public func save(to file: HDF5File, group: String) throws {
        try file.createGroup(group)
        try file.setAttribute("hyperparameters", doubles: [learningRate, beta1, beta2, epsilon, weightDecay, decoupledWeightDecay ? 1 : 0], on: group)
        let names = states.keys.sorted()
        try file.setAttribute("names", string: names.joined(separator: "\n"), on: group)
        guard !names.isEmpty else { return }
        var m: [T] = [], v: [T] = [], steps: [Int64] = [], counts: [Int64] = []
        let total = names.reduce(0) { $0 + states[$1]!.m.count }
        m.reserveCapacity(total); v.reserveCapacity(total)
        for name in names {
            let s = states[name]!
            m += s.m; v += s.v
            steps.append(Int64(s.step)); counts.append(Int64(s.m.count))
        }
        try file.write("\(group)/steps", int64s: steps, shape: [steps.count])
        try file.write("\(group)/counts", int64s: counts, shape: [counts.count])
        try writeTensorValues(file, "\(group)/m", m, shape: [m.count])
        try writeTensorValues(file, "\(group)/v", v, shape: [v.count])
    }

    /// Restores moments, step counts and the current learning rate; the other hyper-parameters
    /// must match the ones this optimiser was built with.
    public func load(from file: HDF5File, group: String) throws {
        let h = try scalarAttribute(file, "hyperparameters", of: group)
        guard h.count == 6 else { throw CheckpointError(file: file.path, field: "\(group)@hyperparameters", message: "\(h.count) values, expected 6") }
        let mine = [beta1, beta2, epsilon, weightDecay, decoupledWeightDecay ? 1 : 0]
        guard Array(h[1...]) == mine else {
            throw CheckpointError(file: file.path, field: "\(group)@hyperparameters",
                                  message: "(β₁, β₂, ε, weight decay, decoupled) = \(Array(h[1...])) differ from the optimiser's \(mine)")
        }
        learningRate = h[0]
        guard try file.attributeNames(of: group).contains("names") else { return try loadPerTensor(from: file, group: group) }
        func bad(_ field: String, _ message: String) -> CheckpointError { CheckpointError(file: file.path, field: "\(group)\(field)", message: message) }
        let names = try file.stringAttribute("names", of: group).split(separator: "\n").map(String.init)
        var loaded: [String: State] = [:]
        if !names.isEmpty {
            let steps = try file.readInt64s("\(group)/steps").values, counts = try file.readInt64s("\(group)/counts").values
            guard steps.count == names.count, counts.count == names.count else {
                throw bad("/steps", "\(steps.count) step counts and \(counts.count) value counts for \(names.count) names")
            }
            guard counts.allSatisfy({ (0 ... Int64(Int32.max)).contains($0) }), steps.allSatisfy({ (0 ... Int64(1) << 53).contains($0) }) else {
                throw bad("/counts", "a count or step count out of range")
            }
            let total = counts.reduce(0) { $0 + Int($1) }
            guard total <= Int(Int32.max) else { throw bad("/counts", "\(total) values in all, more than 2³¹") }
            let m: [T] = try readTensorValues(file, "\(group)/m", expecting: [total])
            let v: [T] = try readTensorValues(file, "\(group)/v", expecting: [total])
            var offset = 0
            for (k, name) in names.enumerated() {
                guard loaded[name] == nil else { throw bad("@names", "\(name) is listed twice") }
                let n = Int(counts[k])
                loaded[name] = State(step: Int(steps[k]), m: Array(m[offset ..< offset + n]), v: Array(v[offset ..< offset + n]))
                offset += n
            }
        }
        states = loaded
    }

    /// The earlier layout: a dataset per parameter and moment.
    private func loadPerTensor(from file: HDF5File, group: String) throws {
        states = [:]
        let names = file.exists("\(group)/m") ? try file.memberNames(of: "\(group)/m") : []
        for name in names {
            let count = try file.datasetInfo("\(group)/m/\(name)").shape.reduce(1, *)
            let m: [T] = try readTensorValues(file, "\(group)/m/\(name)", expecting: [count])
            let v: [T] = try readTensorValues(file, "\(group)/v/\(name)", expecting: [count])
            let step = try scalarAttribute(file, "step", of: "\(group)/m/\(name)")
            states[name] = State(step: Int(step.first ?? 0), m: m, v: v)
        }
    }
}

extension ReduceLROnPlateau: Checkpointable {
    public func save(to file: HDF5File, group: String) throws {
        try file.createGroup(group)
        try file.setAttribute("state", doubles: stateVector, on: group)
    }
    public func load(from file: HDF5File, group: String) throws {
        do { try restore(try scalarAttribute(file, "state", of: group)) } catch let e as TensorError {
            throw CheckpointError(file: file.path, field: "\(group)@state", message: e.message)
        }
    }
}

extension ExponentialMovingAverage: Checkpointable {
    public func save(to file: HDF5File, group: String) throws {
        try file.createGroup(group)
        try file.setAttribute("decay_updates", doubles: [decay, Double(updates)], on: group)
        for name in shadow.keys.sorted() { try writeTensorValues(file, "\(group)/\(name)", shadow[name]!, shape: [shadow[name]!.count]) }
    }
    public func load(from file: HDF5File, group: String) throws {
        let du = try scalarAttribute(file, "decay_updates", of: group)
        guard du.count == 2, du[0] == decay else {
            throw CheckpointError(file: file.path, field: "\(group)@decay_updates", message: "decay \(du.first ?? .nan) differs from \(decay)")
        }
        updates = Int(du[1])
        for name in shadow.keys {
            shadow[name] = try readTensorValues(file, "\(group)/\(name)", expecting: [shadow[name]!.count])
        }
    }
}

public enum Checkpoint {
    /// Writes every part under /<key>, plus `metadata` as float64 attributes of the root (step
    /// counters, seeds below 2⁵³, the epoch). Atomic: temporary file, then rename.
    /// 2: flat parameter groups ("values" + "shapes"); 1: a dataset per parameter. Both are read.
    /// Adam's state is flat too since issue #14 (recognised by its "names" attribute, see above),
    /// with the format still 2: builds before it read these files' parameters (predict, refine on a
    /// stage 1) and fail only on resuming their optimiser.
    static let format = "harmose-checkpoint-2"
    static let readableFormats: Set<String> = ["harmose-checkpoint-1", "harmose-checkpoint-2"]

    public static func save(to path: String, parts: [String: Checkpointable], metadata: [String: Double] = [:]) throws {
        try take(parts: parts, metadata: metadata, for: path).write(to: [path])
    }

    /// The checkpoint of `parts` and `metadata` as they are now, to be written later (possibly on
    /// another thread, while the parts change): `save` is `take` then `write`. `path` names the
    /// checkpoint in error messages.
    public static func take(parts: [String: Checkpointable], metadata: [String: Double] = [:], for path: String) throws -> CheckpointImage {
        let file = HDF5File(recording: path)
        try file.setAttribute("format", string: Checkpoint.format)
        for key in parts.keys.sorted() { try parts[key]!.save(to: file, group: key) }
        for key in metadata.keys.sorted() { try file.setAttribute("meta." + key, doubles: [metadata[key]!]) }
        return CheckpointImage(file: file)
    }

    /// Restores every part from /<key> and returns the metadata.
    @discardableResult
    public static func load(from path: String, parts: [String: Checkpointable]) throws -> [String: Double] {
        try load(from: HDF5File(readingAt: path), parts: parts)
    }

    /// Restores every part from /<key> of an open checkpoint file and returns the metadata.
    @discardableResult
    public static func load(from file: HDF5File, parts: [String: Checkpointable]) throws -> [String: Double] {
        let path = file.path
        guard let format = try? file.stringAttribute("format"), Checkpoint.readableFormats.contains(format) else {
            throw CheckpointError(file: path, field: "/@format", message: "not a HarmoSE checkpoint (format attribute missing or unknown)")
        }
        for key in parts.keys.sorted() {
            guard file.exists(key) else { throw CheckpointError(file: path, field: "/\(key)", message: "missing part") }
            try parts[key]!.load(from: file, group: key)
        }
        var metadata: [String: Double] = [:]
        for name in try file.attributeNames() where name.hasPrefix("meta.") {
            metadata[String(name.dropFirst(5))] = try file.doubleAttribute(name).first
        }
        return metadata
    }
}

/// A checkpoint's content taken at one moment (`Checkpoint.take`): the parts' values are shared
/// copy-on-write with the live objects, so taking it is cheap, and later changes to the parts do
/// not reach it. Writing it costs what `Checkpoint.save` costs (libhdf5's per-object work, about
/// 50 µs per dataset), which a training loop can do on another thread while it goes on.
/// Sendable because nothing changes it after `take`: it may be handed to one other thread.
public final class CheckpointImage: @unchecked Sendable {
    private let file: HDF5File

    init(file: HDF5File) { self.file = file }

    /// Writes the checkpoint to each of `paths` (the same bytes), in order, each atomically:
    /// libhdf5 writes a temporary file once, which is copied for all but the last path and then
    /// renamed. A failure removes the temporaries and leaves earlier files as they were.
    public func write(to paths: [String]) throws {
        guard let last = paths.last else { return }
        func temporary(_ path: String) -> String {
            // Hidden and named like every other atomic write (`.NAME.tmp-<pid>-<random>`), so that a
            // killed run's leftover is recognised and removed by the next run and by `harmose gc`.
            let url = URL(fileURLWithPath: path)
            return url.deletingLastPathComponent()
                .appendingPathComponent(".\(url.lastPathComponent).tmp-\(ProcessInfo.processInfo.processIdentifier)-\(UInt32.random(in: 0 ... .max))").path
        }
        let written = temporary(last)
        let fm = FileManager.default
        do {
            try file.writeRecorded(to: written)
        } catch {
            try? fm.removeItem(atPath: written)
            throw error
        }
        defer { try? fm.removeItem(atPath: written) }
        func replace(_ path: String, with source: String) throws {
            if fm.fileExists(atPath: path) { try fm.removeItem(atPath: path) }
            try fm.moveItem(atPath: source, toPath: path)
        }
        for path in paths.dropLast() {
            let copy = temporary(path)
            do {
                try fm.copyItem(atPath: written, toPath: copy)
                try replace(path, with: copy)
            } catch {
                try? fm.removeItem(atPath: copy)
                throw error
            }
        }
        try replace(last, with: written)
    }
}
