// Pipeline stage kind `features` and its artifact: the model's geometric input computed once — per
// structure the model's own edges (the blocks of the DFT Hamiltonian, else of the overlap, or every
// pair within `cutoff`), their vectors, the real spherical harmonics of their directions and the
// radial basis times the envelope, under the model section of the training configuration — in one
// HDF5 file (features.h5) that `train` reads instead of recomputing geometry. Per-structure and
// partitioned by rank.
//
// features.h5: attributes "format" = "harmose-features-2" and "model_geometry" (JSON: sh_lmax,
// radial_basis, radial_count, cutoff); per structure a group "/k" with attribute "name" and
// atomic_numbers [A], edge_index [E, 2] (i, j; 0-based), edge_shift [E, 3], edge_vector [E, 3] (Å),
// edge_harmonics [E, (sh_lmax+1)²] (float64, component normalisation) and edge_radial
// [E, radial_count] (float32, exactly the model's input).
import Foundation
import Graphs
import HDF5Kit
import Models
import StageAPI
import SO3
import Structures

/// The geometry settings that decide a features artifact's contents (from `ModelConfig`).
struct FeatureGeometry: Codable, Equatable {
    var shLmax: Int
    var radialBasis: String
    var radialCount: Int
    var cutoff: Double

    init(_ c: ModelConfig) { shLmax = c.shLmax; radialBasis = c.radialBasis; radialCount = c.radialCount; cutoff = c.cutoff }

    enum CodingKeys: String, CodingKey { case shLmax = "sh_lmax", radialBasis = "radial_basis", radialCount = "radial_count", cutoff }

    /// Compact JSON with sorted keys (the stored attribute and error messages).
    var json: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return String(decoding: (try? encoder.encode(self)) ?? Data(), as: UTF8.self)
    }
}

public enum FeaturesFile {
    static let format = "harmose-features-2"
    static func path(_ url: URL) -> URL { url.pathExtension == "h5" ? url : url.appendingPathComponent("features.h5") }

    /// Reads the edge features of a features artifact (its folder or features.h5) for a model
    /// configuration, by structure name; a file of another format or written for other geometry
    /// settings is an error naming the file and the field.
    static func read(_ url: URL, config: ModelConfig) throws -> [String: (edges: [BlockKey], features: EdgeFeatures)] {
        let path = FeaturesFile.path(url)
        guard FileManager.default.fileExists(atPath: path.path) else {
            throw TrainingError(file: path.path, message: "not a features artifact (no features.h5); give the output of a `features` stage")
        }
        // Our own artifact (possibly large, read in parts): libhdf5 in this process, no snapshot.
        let file = try HDF5File(readingOwnArtifactAt: path.path)
        let format = (try? file.stringAttribute("format")) ?? "none"
        guard format == FeaturesFile.format else {
            throw TrainingError(file: path.path, field: "@format", message: "is \"\(format)\", expected \"\(FeaturesFile.format)\" (re-run the features stage)")
        }
        let stored = try JSONDecoder().decode(FeatureGeometry.self, from: Data(try file.stringAttribute("model_geometry").utf8))
        let wanted = FeatureGeometry(config)
        guard stored == wanted else {
            throw TrainingError(file: path.path, field: "@model_geometry",
                                message: "written for \(stored.json), the model needs \(wanted.json); give the features stage the same config as train")
        }
        var out: [String: (edges: [BlockKey], features: EdgeFeatures)] = [:]
        var k = 0
        while file.exists("/\(k)") {
            let g = "/\(k)"
            let index = try file.readInt64s("\(g)/edge_index").values, shift = try file.readInt64s("\(g)/edge_shift").values
            let edges = (0 ..< index.count / 2).map {
                BlockKey(Int(shift[3 * $0]), Int(shift[3 * $0 + 1]), Int(shift[3 * $0 + 2]), Int(index[2 * $0]), Int(index[2 * $0 + 1]))
            }
            out[try file.stringAttribute("name", of: g)] = (edges, EdgeFeatures(harmonics: try file.readDoubles("\(g)/edge_harmonics").values,
                                                                                radial: try file.readFloats("\(g)/edge_radial").values))
            k += 1
        }
        return out
    }
}

public struct FeaturesStageKind: StageKind {
    public init() {}
    public let name = "features"
    public let summary = "Computes the model's edge geometry once (its edges, vectors, spherical harmonics, radial basis) into features.h5; train reads it."
    /// 2: the model's geometry settings from the training config, radial basis stored.
    public let artifactVersion = 2
    public let parameters: [ParameterSpec] = [
        ParameterSpec("cutoff", .number, default: .double(0), minimum: 0,
                      help: "Å; 0 (the model's rule): the edges are the blocks of the Hamiltonian (else overlap) file"),
    ]
    public let inputs: [InputSpec] = [
        InputSpec("data", .pathOrStage, multiple: true, help: "structures: folders, archives or ingest stages"),
        InputSpec("config", .path, required: false, help: "the training configuration JSON train uses (its model section sets sh_lmax and the radial basis); default: the defaults"),
    ]

    public func run(_ context: StageContext) throws -> [String: JSONValue] {
        let cutoff = context.parameters.double("cutoff")
        var config = (try context.inputs["config"]?.first.map { try TrainConfig.load($0) } ?? TrainConfig()).model
        let records = try Dataset.readRecords((context.inputs["data"] ?? []).map(resolveDataInput), log: { context.log($0) })
        config.basis = try Dataset.basis(of: records)
        let path = context.outputDirectory.appendingPathComponent("features.h5")
        let file = try HDF5File(creatingAt: path.path)
        try file.setAttribute("format", string: FeaturesFile.format)
        try file.setAttribute("model_geometry", string: FeatureGeometry(config).json)
        var index = "index\tname\tatoms\tedges\n"
        var edgesTotal = 0, atomsTotal = 0, written = 0
        for (k, r) in records.enumerated() where context.partition.owns(k) {
            let graph: StructureGraph
            if cutoff > 0 {
                graph = try StructureGraph(name: r.name, structure: r.structure, cutoff: cutoff, config: config)
            } else {
                guard let keys = r.hamiltonian?.keys ?? r.overlap?.keys else {
                    throw TrainingError(file: r.name, field: "hamiltonian", message: "no Hamiltonian or overlap blocks to take edges from (set params.cutoff)")
                }
                graph = try StructureGraph(name: r.name, structure: r.structure, keys: keys, config: config)
            }
            let features = try EdgeFeatures(graph, config: config)
            let g = "/\(k)"
            try file.createGroup(g)
            try file.setAttribute("name", string: r.name, on: g)
            let e = graph.edges
            try file.write("\(g)/atomic_numbers", int64s: r.structure.atomicNumbers.map(Int64.init), shape: [r.structure.atomCount])
            try file.write("\(g)/edge_index", int64s: e.flatMap { [Int64($0.i), Int64($0.j)] }, shape: [e.count, 2])
            try file.write("\(g)/edge_shift", int64s: e.flatMap { [Int64($0.shift.x), Int64($0.shift.y), Int64($0.shift.z)] }, shape: [e.count, 3])
            try file.write("\(g)/edge_vector", doubles: e.flatMap { [$0.vector.x, $0.vector.y, $0.vector.z] }, shape: [e.count, 3])
            try file.write("\(g)/edge_harmonics", doubles: features.harmonics, shape: [e.count, (config.shLmax + 1) * (config.shLmax + 1)])
            try file.write("\(g)/edge_radial", floats: features.radial, shape: [e.count, config.radialCount])
            index += "\(k)\t\(r.name)\t\(r.structure.atomCount)\t\(e.count)\n"
            edgesTotal += e.count; atomsTotal += r.structure.atomCount; written += 1
            context.progress(done: k + 1, total: records.count)
        }
        try file.flush()
        try index.write(to: context.outputDirectory.appendingPathComponent("index.tsv"), atomically: true, encoding: .utf8)
        return ["structures": .int(written), "edges": .int(edgesTotal),
                "avg_neighbors": .double(atomsTotal > 0 ? Double(edgesTotal) / Double(atomsTotal) : 0)]
    }
}
