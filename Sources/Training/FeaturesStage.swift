// Pipeline stage kind `features`: the model's geometric input computed once and cached — per
// structure the off-site edges (the DFT blocks, or every pair within a cutoff), their vectors and
// the real spherical harmonics of their directions — in one HDF5 file, for inspection, for
// external tools and for later stages. Per-structure and partitioned by rank.
import Foundation
import Graphs
import HDF5Kit
import Models
import StageAPI
import SO3
import Structures

public struct FeaturesStageKind: StageKind {
    public init() {}
    public let name = "features"
    public let summary = "Caches edge geometry (blocks or cutoff pairs), edge vectors and spherical harmonics per structure in features.h5."
    public let artifactVersion = 1
    public let parameters: [ParameterSpec] = [
        ParameterSpec("cutoff", .number, default: .double(0), minimum: 0, help: "Å; 0: the edges are the blocks of the overlap (else Hamiltonian) file"),
        ParameterSpec("sh_lmax", .integer, default: .int(4), minimum: 0, maximum: 8, help: "spherical harmonics degree (component normalisation)"),
    ]
    public let inputs: [InputSpec] = [
        InputSpec("data", .pathOrStage, multiple: true, help: "structures: folders, archives or ingest stages"),
    ]

    public func run(_ context: StageContext) throws -> [String: JSONValue] {
        let cutoff = context.parameters.double("cutoff"), lmax = context.parameters.int("sh_lmax")
        let sh = try SphericalHarmonics(lmax: lmax, normalization: .component)
        let records = try Dataset.readRecords((context.inputs["data"] ?? []).map(resolveDataInput), log: { context.log($0) })
        let path = context.outputDirectory.appendingPathComponent("features.h5")
        let file = try HDF5File(creatingAt: path.path)
        try file.setAttribute("format", string: "harmose-features-1")
        try file.setAttribute("sh_lmax_cutoff", doubles: [Double(lmax), cutoff])
        var index = "index\tname\tatoms\tedges\n"
        var edgesTotal = 0, atomsTotal = 0, written = 0
        for (k, r) in records.enumerated() where context.partition.owns(k) {
            let graph: NeighborGraph
            if cutoff > 0 {
                graph = try NeighborGraphBuilder.withinCutoff(r.structure, cutoff: cutoff, includeSelf: false)
            } else {
                guard let keys = r.overlap?.keys ?? r.hamiltonian?.keys else {
                    throw TrainingError(file: r.name, field: "overlap", message: "no overlap or Hamiltonian blocks to take edges from (set params.cutoff)")
                }
                graph = try NeighborGraphBuilder.fromBlocks(r.structure, keys: keys, includeSelf: false, source: r.name)
            }
            let g = "/\(k)"
            try file.createGroup(g)
            try file.setAttribute("name", string: r.name, on: g)
            let e = graph.edges
            try file.write("\(g)/atomic_numbers", int64s: r.structure.atomicNumbers.map(Int64.init), shape: [r.structure.atomCount])
            try file.write("\(g)/edge_index", int64s: e.flatMap { [Int64($0.i), Int64($0.j)] }, shape: [e.count, 2])
            try file.write("\(g)/edge_shift", int64s: e.flatMap { [Int64($0.shift.x), Int64($0.shift.y), Int64($0.shift.z)] }, shape: [e.count, 3])
            try file.write("\(g)/edge_vector", doubles: e.flatMap { [$0.vector.x, $0.vector.y, $0.vector.z] }, shape: [e.count, 3])
            try file.write("\(g)/edge_harmonics", doubles: e.flatMap { sh.values($0.vector) }, shape: [e.count, sh.dim])
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
