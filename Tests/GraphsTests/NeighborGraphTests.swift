import XCTest
import Formats
import Structures
import TestSupport
@testable import Graphs


/// The obvious O(N² · images) search, with an image range wide enough for any cutoff.
private func bruteForce(_ s: Structure, cutoff: Double, includeSelf: Bool) -> [GraphEdge] {
    let rec = s.lattice.reciprocalVectors
    var range = SIMD3<Int>.zero
    for d in 0 ..< 3 where s.lattice.periodic[d] {
        // Plane spacing 2π/|b_d|; +1 covers wrapped fractional differences in (−1, 1).
        range[d] = Int((cutoff * norm(rec[d]) / (2 * .pi)).rounded(.up)) + 2
    }
    var out: [GraphEdge] = []
    for i in 0 ..< s.atomCount {
        for j in 0 ..< s.atomCount {
            for x in -range.x ... range.x { for y in -range.y ... range.y { for z in -range.z ... range.z {
                let R = LatticeShift(x, y, z)
                if i == j && R == .zero && !includeSelf { continue }
                let v = s.positions[j] + s.lattice.translation(R) - s.positions[i]
                let d = norm(v)
                if d <= cutoff { out.append(GraphEdge(i: i, j: j, shift: R, vector: v, distance: d)) }
            } } }
        }
    }
    return out.sorted(by: GraphEdge.precedes)
}

private func randomStructure(atoms: Int, periodic: [Bool], skew: Double, _ g: inout SplitMix, scale: Double = 1) -> Structure {
    var vectors: [Vec3] = []
    for d in 0 ..< 3 {
        var v = Vec3(Double.random(in: -skew ... skew, using: &g), Double.random(in: -skew ... skew, using: &g),
                     Double.random(in: -skew ... skew, using: &g))
        v[d] += Double.random(in: 2.5 ... 6, using: &g) * scale
        vectors.append(v)
    }
    let lattice = Lattice(vectors: vectors, periodic: periodic)
    // Fractional coordinates slightly outside [0, 1) too: the builder must wrap them.
    let positions = (0 ..< atoms).map { _ in
        lattice.cartesian(Vec3(Double.random(in: -0.3 ... 1.3, using: &g), Double.random(in: -0.3 ... 1.3, using: &g),
                               Double.random(in: -0.3 ... 1.3, using: &g)))
    }
    return Structure(lattice: lattice, atomicNumbers: Array(repeating: 1, count: atoms), positions: positions,
                     basis: [1: OrbitalShells([0])])
}

final class NeighborGraphTests: XCTestCase {
    private func assertSameGraph(_ got: NeighborGraph, _ want: [GraphEdge], file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(got.edges.count, want.count, "edge count", file: file, line: line)
        guard got.edges.count == want.count else { return }
        for (a, b) in zip(got.edges, want) {
            XCTAssertEqual(a.key, b.key, file: file, line: line)
            XCTAssertEqual(a.distance, b.distance, accuracy: 1e-12, file: file, line: line)
            XCTAssertLessThan(norm(a.vector - b.vector), 1e-12, file: file, line: line)
        }
    }

    func testRandomTriclinicCellsMatchBruteForce() throws {
        var g = SplitMix(state: 2024)
        for trial in 0 ..< 8 {
            let s = randomStructure(atoms: 3 + trial % 5 * 4, periodic: [true, true, true], skew: 2.5, &g)
            // Cutoffs from well inside the cell to several cell lengths.
            for cutoff in [1.5, 4.0, 9.5] {
                let graph = try NeighborGraphBuilder.withinCutoff(s, cutoff: cutoff, includeSelf: trial % 2 == 0)
                assertSameGraph(graph, bruteForce(s, cutoff: cutoff, includeSelf: trial % 2 == 0))
            }
        }
    }

    func testLargeCellUsesManyBinsAndStillMatches() throws {
        var g = SplitMix(state: 99)
        let s = randomStructure(atoms: 80, periodic: [true, true, true], skew: 1.5, &g, scale: 4)
        let graph = try NeighborGraphBuilder.withinCutoff(s, cutoff: 3.2)
        assertSameGraph(graph, bruteForce(s, cutoff: 3.2, includeSelf: false))
        XCTAssertGreaterThan(graph.edgeCount, 0)
    }

    func testSlabAndMoleculeRespectOpenDirections() throws {
        var g = SplitMix(state: 17)
        for trial in 0 ..< 6 {
            let slab = randomStructure(atoms: 9, periodic: [true, true, false], skew: 1.0, &g)
            let graph = try NeighborGraphBuilder.withinCutoff(slab, cutoff: 6.0)
            XCTAssertTrue(graph.edges.allSatisfy { $0.shift.z == 0 })
            assertSameGraph(graph, bruteForce(slab, cutoff: 6.0, includeSelf: false))

            let molecule = randomStructure(atoms: 7 + trial, periodic: [false, false, false], skew: 0.5, &g)
            let mg = try NeighborGraphBuilder.withinCutoff(molecule, cutoff: 2.5, includeSelf: true)
            XCTAssertTrue(mg.edges.allSatisfy { $0.shift == .zero })
            assertSameGraph(mg, bruteForce(molecule, cutoff: 2.5, includeSelf: true))
        }
    }

    func testMoleculeInDegenerateBoxStillWorks() throws {
        // Molecules may come with a zero "box": binning falls back to Cartesian axes.
        let s = Structure(lattice: Lattice(vectors: [.zero, .zero, .zero], periodic: [false, false, false]),
                          atomicNumbers: [8, 1, 1],
                          positions: [Vec3(0, 0, 0), Vec3(0.96, 0, 0), Vec3(-0.24, 0.93, 0)],
                          basis: [8: OrbitalShells([0]), 1: OrbitalShells([0])])
        let graph = try NeighborGraphBuilder.withinCutoff(s, cutoff: 1.0)
        XCTAssertEqual(graph.keys, [BlockKey(0, 0, 0, 0, 1), BlockKey(0, 0, 0, 0, 2), BlockKey(0, 0, 0, 1, 0), BlockKey(0, 0, 0, 2, 0)])
        XCTAssertEqual(graph.edges[0].distance, 0.96, accuracy: 1e-15)
    }

    func testDeterministicOrderAndSymmetry() throws {
        var g = SplitMix(state: 5)
        let s = randomStructure(atoms: 11, periodic: [true, true, true], skew: 2, &g)
        let a = try NeighborGraphBuilder.withinCutoff(s, cutoff: 5)
        let b = try NeighborGraphBuilder.withinCutoff(s, cutoff: 5)
        XCTAssertEqual(a, b)
        // Every edge i→(j,R) has its reverse j→(i,−R) with the opposite vector.
        let reverse = a.reverseEdgeIndex
        for (n, e) in a.edges.enumerated() {
            let r = a.edges[try XCTUnwrap(reverse[n])]
            XCTAssertEqual(r.key, e.key.transposed)
            XCTAssertLessThan(norm(r.vector + e.vector), 1e-12)
        }
        XCTAssertEqual(a.sources.count, a.edgeCount)
        XCTAssertEqual(a.flatVectors.count, 3 * a.edgeCount)
        XCTAssertEqual(a.flatShifts[3 * 5 + 2], a.edges[5].shift.z)
        XCTAssertEqual(a.distances[7], a.edges[7].distance)
    }

    func testBlockGraphFollowsKeys() throws {
        let lattice = Lattice(vectors: [Vec3(3, 0, 0), Vec3(0, 3, 0), Vec3(0, 0, 20)], periodic: [true, true, false])
        let s = Structure(lattice: lattice, atomicNumbers: [1, 1], positions: [Vec3(0, 0, 0), Vec3(1, 1, 0)],
                          basis: [1: OrbitalShells([0])])
        var op = BlockOperator()
        for key in [BlockKey(1, 0, 0, 1, 0), BlockKey(0, 0, 0, 0, 0), BlockKey(0, 0, 0, 0, 1), BlockKey(-1, 0, 0, 0, 1)] {
            op.append(key, rows: 1, cols: 1, values: [1])
        }
        let graph = try NeighborGraphBuilder.fromBlocks(s, operator: op)
        XCTAssertEqual(graph.keys, [BlockKey(0, 0, 0, 0, 0), BlockKey(-1, 0, 0, 0, 1), BlockKey(0, 0, 0, 0, 1), BlockKey(1, 0, 0, 1, 0)])
        XCTAssertLessThan(norm(graph.edges[1].vector - Vec3(-2, 1, 0)), 1e-15)
        XCTAssertEqual(graph.edges[3].distance, (4 + 1.0).squareRoot(), accuracy: 1e-15)
        let noSelf = try NeighborGraphBuilder.fromBlocks(s, operator: op, includeSelf: false)
        XCTAssertEqual(noSelf.edgeCount, 3)
    }

    func testBadInputsGiveTypedErrors() {
        let s = Structure(lattice: Lattice(vectors: [Vec3(1, 0, 0), Vec3(2, 0, 0), Vec3(0, 0, 1)]),
                          atomicNumbers: [1], positions: [.zero], basis: [1: OrbitalShells([0])])
        XCTAssertThrowsError(try NeighborGraphBuilder.withinCutoff(s, cutoff: 2)) {
            XCTAssertTrue("\($0)".contains("linearly dependent"))
        }
        XCTAssertThrowsError(try NeighborGraphBuilder.withinCutoff(s, cutoff: -1)) {
            XCTAssertEqual($0 as? GraphError, .invalidCutoff(-1))
        }
        XCTAssertThrowsError(try NeighborGraphBuilder.fromBlocks(s, keys: [BlockKey(0, 0, 0, 0, 3)], source: "hamiltonian.h5")) {
            XCTAssertEqual("\($0)", "hamiltonian.h5: block [0, 0, 0, 0, 3] refers to an atom outside 0..<1")
        }
    }

    /// On real DFT data: every block MoTe2's Hamiltonian stores lies within a cutoff graph whose
    /// radius is the longest block distance, and the two graphs' vectors agree.
    func testBlockGraphOfMoTe2LiesInsideCutoffGraph() throws {
        let record = try FormatReader.readRecord(at: Fixtures.url("peer/deeph-dock/MoTe2"))
        let blocks = try NeighborGraphBuilder.fromBlocks(record.structure, operator: record.hamiltonian!)
        XCTAssertEqual(blocks.edgeCount, record.hamiltonian!.blockCount)
        let radius = blocks.edges.map(\.distance).max()!
        let cutoff = try NeighborGraphBuilder.withinCutoff(record.structure, cutoff: radius + 1e-9, includeSelf: true)
        let index = Dictionary(uniqueKeysWithValues: cutoff.edges.map { ($0.key, $0) })
        for e in blocks.edges {
            let c = try XCTUnwrap(index[e.key], "block \(e.key) missing from the cutoff graph")
            XCTAssertLessThan(norm(c.vector - e.vector), 1e-12)
        }
        XCTAssertGreaterThanOrEqual(cutoff.edgeCount, blocks.edgeCount)
    }
}
