// Layer-by-layer, chunked stage-1 inference (LayerwiseInference.swift) gives the blocks of the
// whole-structure forward pass, on a periodic hBN supercell (strained GPAW fixture, 2×2 cell
// repeated 3×2: 48 atoms, edges crossing the cell boundary), for chunks
// smaller than a cell, uneven chunk sizes and 1 or 3 workers — bit for bit between worker counts.
import Autograd
import Formats
import Foundation
@testable import Models
import Structures
import TestSupport
import XCTest

final class LayerwiseInferenceTests: XCTestCase {
    /// The fixture's cell repeated na × nb in-plane, atoms grouped by element as the dock layout stores them.
    static func supercell(_ s: Structure, _ na: Int, _ nb: Int) -> Structure {
        let v = s.lattice.vectors
        var numbers: [Int] = [], positions: [Vec3] = []
        for z in s.species {
            for a in 0 ..< s.atomCount where s.atomicNumbers[a] == z {
                for i in 0 ..< na { for j in 0 ..< nb {
                    numbers.append(z)
                    positions.append(s.positions[a] + Double(i) * v[0] + Double(j) * v[1])
                } }
            }
        }
        let lattice = Lattice(vectors: [Double(na) * v[0], Double(nb) * v[1], v[2]], periodic: s.lattice.periodic)
        return Structure(lattice: lattice, atomicNumbers: numbers, positions: positions, basis: s.basis)
    }

    func testChunkedLayerwiseEqualsWholeForwardOnPeriodicSupercell() throws {
        let cell = try FormatReader.readRecord(at: Fixtures.url("overlap/hbn-2x2-0000")).structure
        let structure = Self.supercell(cell, 3, 2)
        XCTAssertEqual(structure.atomCount, 48)
        var config = ModelConfig()
        config.irreps = "4x0e+2x1o+2x1e+2x2e+2x2o+1x3o+1x3e+1x4e"
        config.layers = 2
        config.cutoff = 4.0
        config.radialCount = 4
        config.radialHidden = 8
        config.avgNeighbors = 20
        config.headInitScale = 1   // blocks of order 1, not of the untrained mean
        config.basis = ["B": [0, 1, 0, 1, 2], "N": [0, 1, 0, 1, 2]]
        config.seed = 11
        let model = try HamiltonianModel<Float>(config: config)
        // Different scales per group, and a shift, as a trained model has.
        for (k, g) in model.groups.enumerated() {
            let stats = try XCTUnwrap(model.statistics(of: g))
            var shift = stats.shift
            if let first = model.heads[g]!.scalarComponents.first { shift[first] = 0.3 * Double(k) - 1 }
            try model.setStatistics(GroupStatistics(scale: 0.5 + 0.25 * Double(k), shift: shift), for: g)
        }
        let graph = try StructureGraph(name: "hbn-3x2", structure: structure, cutoff: config.cutoff, config: config)
        XCTAssertTrue(graph.edges.contains { $0.key.shift != .zero }, "edges across the periodic boundary")
        let whole = try model.predictOperators(try GraphBatch<Float>([graph], config: config))[0]

        var reference: [BlockKey: [Double]]? = nil
        for (chunkAtoms, workers) in [(5, 1), (5, 3), (17, 2)] {
            var got: [BlockKey: [Double]] = [:]
            var order: [BlockKey] = []
            var passes = 0
            try ExecutionContext(threads: workers).run {
                try model.predictLayerwise(graph, chunkAtoms: chunkAtoms, workers: workers, progress: { done, total in
                    passes = done
                    XCTAssertEqual(total, ((48 + chunkAtoms - 1) / chunkAtoms) * (config.layers + 1))
                }) { blocks in
                    for b in blocks {
                        XCTAssertNil(got[b.key], "block \(b.key) emitted twice")
                        XCTAssertEqual(b.values.count, b.rows * b.cols)
                        got[b.key] = b.values
                        order.append(b.key)
                    }
                }
            }
            XCTAssertEqual(passes, ((48 + chunkAtoms - 1) / chunkAtoms) * (config.layers + 1))
            // Every block of the whole prediction, each atom's on-site block before its edges.
            XCTAssertEqual(Set(got.keys), Set(whole.keys), "chunks of \(chunkAtoms)")
            XCTAssertEqual(order.count, whole.blockCount)
            var worst = 0.0, largest = 0.0
            for (b, key) in whole.keys.enumerated() {
                let expected = Array(whole.values(at: b))
                worst = max(worst, maxAbsDifference(try XCTUnwrap(got[key]), expected))
                largest = max(largest, expected.map(abs).max() ?? 0)
            }
            XCTAssertGreaterThan(largest, 0.1)
            print("layerwise, chunks of \(chunkAtoms), \(workers) workers: max |Δ| \(worst) eV, largest |H| \(largest) eV")
            // Float32 network: the matrix products round a row differently for another row count
            // (measured: ≤ 8e-7 of the largest entry, 3.9e-6 eV of 5.1 eV).
            XCTAssertLessThanOrEqual(worst, 1e-5 * largest, "chunks of \(chunkAtoms), \(workers) workers: \(worst) eV")
            // The worker count changes nothing.
            if chunkAtoms == 5 {
                if let reference { XCTAssertEqual(got, reference, "\(workers) workers") } else { reference = got }
            }
        }
    }
}
