// The `graph` pipeline stage: the neighbor graph of every structure of an ingest artifact, one
// graph.h5 per structure (graphs/<name>.h5) plus an index. Per-structure: with a partition, each
// rank builds only the graphs of the structures it owns.
import Foundation
import Formats
import HDF5Kit
import Pipeline
import Structures

public struct GraphStage: StageKind {
    public let name = "graph"
    public let summary = "Neighbor graphs (edges i → j + R with vectors and distances) of every ingested structure, as graphs/<name>.h5."
    /// 1: graphs/<name>.h5 with edge_index, edge_shift, edge_vector, edge_distance, atomic_numbers,
    /// positions, lattice, periodic, cutoff; index.tsv.
    public let artifactVersion = 1
    public let parameters: [ParameterSpec] = [
        ParameterSpec("mode", .choice(["cutoff", "blocks"]), default: "cutoff",
                      help: "cutoff: every pair within `cutoff` Å (over periodic images); blocks: exactly the blocks the Hamiltonian stores (DeepH-E3's default)"),
        ParameterSpec("cutoff", .number, default: 6.0, minimum: 0.1, maximum: 50,
                      help: "neighbor radius in Å (mode \"cutoff\")"),
        ParameterSpec("include_self", .boolean, default: false, help: "add the on-site edges i → i, R = 0"),
    ]
    public let inputs: [InputSpec] = [
        InputSpec("structures", .stage(kinds: ["ingest"]), help: "an ingest stage"),
    ]

    public init() {}

    public static let graphsFolder = "graphs"

    public func run(_ context: StageContext) throws -> [String: Pipeline.JSONValue] {
        let structures = try IngestStage.structureFolders(in: context.input("structures"))
        let mode = context.parameters.string("mode")
        let cutoff = context.parameters.double("cutoff")
        let includeSelf = context.parameters.bool("include_self")
        let owned = structures.enumerated().filter { context.partition.owns($0.offset) }.map(\.element)
        let out = context.outputDirectory.appendingPathComponent(GraphStage.graphsFolder)
        var rows: [String] = []
        var edges = 0, atoms = 0, maxDegree = 0
        for (n, (name, folder)) in owned.enumerated() {
            let record = try FormatReader.readRecord(at: folder)
            let graph: NeighborGraph
            if mode == "blocks" {
                guard let h = record.hamiltonian else {
                    throw FormatError(file: folder.path, field: "hamiltonian", message: "graph mode \"blocks\" needs a Hamiltonian")
                }
                graph = try NeighborGraphBuilder.fromBlocks(record.structure, operator: h, includeSelf: includeSelf,
                                                            source: folder.appendingPathComponent("hamiltonian.h5").path)
            } else {
                graph = try NeighborGraphBuilder.withinCutoff(record.structure, cutoff: cutoff, includeSelf: includeSelf)
            }
            let file = out.appendingPathComponent(name + ".h5")
            try FileManager.default.createDirectory(at: file.deletingLastPathComponent(), withIntermediateDirectories: true)
            try GraphStage.write(graph, structure: record.structure, to: file)
            var degree = [Int](repeating: 0, count: graph.atomCount)
            for e in graph.edges { degree[e.i] += 1 }
            let maxD = degree.max() ?? 0
            edges += graph.edgeCount
            atoms += graph.atomCount
            maxDegree = max(maxDegree, maxD)
            rows.append("\(name)\t\(graph.atomCount)\t\(graph.edgeCount)\t\(maxD)")
            context.progress(done: n + 1, total: owned.count)
        }
        try Data(("name\tatoms\tedges\tmax_degree\n" + rows.map { $0 + "\n" }.joined()).utf8)
            .write(to: context.outputDirectory.appendingPathComponent("index.tsv"))
        context.log("built \(owned.count) graphs, \(edges) edges")
        return [
            "graphs": .int(owned.count),
            "edges": .int(edges),
            "mean_degree": .double(atoms > 0 ? (Double(edges) / Double(atoms) * 1000).rounded() / 1000 : 0),
            "max_degree": .int(maxDegree),
        ]
    }

    /// Writes one graph with its structure (so a model needs no second file to place atoms).
    public static func write(_ graph: NeighborGraph, structure: Structure, to url: URL) throws {
        do {
            let f = try HDF5File(creatingAt: url.path)
            let e = graph.edgeCount
            try f.write("edge_index", int64s: graph.edges.flatMap { [Int64($0.i), Int64($0.j)] }, shape: [e, 2])
            try f.write("edge_shift", int64s: graph.edges.flatMap { [Int64($0.shift.x), Int64($0.shift.y), Int64($0.shift.z)] }, shape: [e, 3])
            try f.write("edge_vector", doubles: graph.edges.flatMap { [$0.vector.x, $0.vector.y, $0.vector.z] }, shape: [e, 3])
            try f.write("edge_distance", doubles: graph.edges.map(\.distance), shape: [e])
            try f.write("atomic_numbers", int64s: structure.atomicNumbers.map(Int64.init), shape: [structure.atomCount])
            try f.write("positions", doubles: structure.positions.flatMap { [$0.x, $0.y, $0.z] }, shape: [structure.atomCount, 3])
            try f.write("lattice", doubles: structure.lattice.vectors.flatMap { [$0.x, $0.y, $0.z] }, shape: [3, 3])
            try f.write("periodic", int64s: structure.lattice.periodic.map { $0 ? 1 : 0 }, shape: [3])
            try f.write("cutoff", doubles: [graph.cutoff ?? .nan], shape: [])
            try f.flush()
        } catch let error as HDF5Error {
            throw FormatError(file: error.file, field: error.object, message: error.message)
        }
    }

    /// Reads a graph written by `write` (edges and atom count; the structure is in the file too).
    public static func readGraph(at url: URL) throws -> NeighborGraph {
        do {
            let f = try HDF5File(readingAt: url.path)
            let index = try f.readInt64s("edge_index").values
            let shift = try f.readInt64s("edge_shift").values
            let vector = try f.readDoubles("edge_vector").values
            let distance = try f.readDoubles("edge_distance").values
            let atoms = try f.readInt64s("atomic_numbers").values.count
            let cutoff = try f.readDoubles("cutoff").values.first
            let e = distance.count
            guard index.count == 2 * e, shift.count == 3 * e, vector.count == 3 * e else {
                throw FormatError(file: url.path, field: "edge_index", message: "edge arrays disagree in length")
            }
            let edges = (0 ..< e).map { k in
                GraphEdge(i: Int(index[2 * k]), j: Int(index[2 * k + 1]),
                          shift: LatticeShift(Int(shift[3 * k]), Int(shift[3 * k + 1]), Int(shift[3 * k + 2])),
                          vector: Vec3(vector[3 * k], vector[3 * k + 1], vector[3 * k + 2]), distance: distance[k])
            }
            return NeighborGraph(atomCount: atoms, edges: edges, cutoff: cutoff.flatMap { $0.isNaN ? nil : $0 })
        } catch let error as HDF5Error {
            throw FormatError(file: error.file, field: error.object, message: error.message)
        }
    }
}
