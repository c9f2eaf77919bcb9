import Structures
import TestSupport
import XCTest

final class StructuresTests: XCTestCase {
    func testReciprocalLatticeIsDualToDirectLattice() {
        let lattice = Lattice(vectors: [Vec3(3.1, 0.2, 0), Vec3(-1.4, 2.9, 0.3), Vec3(0.1, -0.2, 7.5)])
        let b = lattice.reciprocalVectors
        for i in 0 ..< 3 {
            for j in 0 ..< 3 {
                XCTAssertEqual(dot(b[i], lattice.vectors[j]), i == j ? 2 * .pi : 0, accuracy: 1e-12)
            }
        }
        let r = Vec3(0.7, -1.2, 3.3)
        XCTAssertLessThan(norm(lattice.cartesian(lattice.fractional(r)) - r), 1e-12)
    }

    func testElementsRoundTrip() {
        XCTAssertEqual(Elements.atomicNumber(of: "Mo"), 42)
        XCTAssertEqual(Elements.symbol(of: 52), "Te")
        XCTAssertNil(Elements.atomicNumber(of: "Xx"))
        XCTAssertNil(Elements.symbol(of: 0))
        for z in 1 ... 118 { XCTAssertEqual(Elements.atomicNumber(of: Elements.symbol(of: z)!), z) }
    }

    func testHermiticityDeviationFindsAsymmetryAndUnpairedBlocks() {
        var op = BlockOperator()
        op.append(BlockKey(1, 0, 0, 0, 1), rows: 1, cols: 2, values: [1, 2])
        op.append(BlockKey(-1, 0, 0, 1, 0), rows: 2, cols: 1, values: [1, 2.5])
        op.append(BlockKey(0, 0, 0, 0, 0), rows: 1, cols: 1, values: [4])
        op.append(BlockKey(0, 1, 0, 0, 0), rows: 1, cols: 1, values: [4])
        let (dev, unpaired) = op.hermiticityDeviation()
        XCTAssertEqual(dev, 0.5, accuracy: 1e-15)
        XCTAssertEqual(unpaired, [BlockKey(0, 1, 0, 0, 0)])
        XCTAssertEqual(op.values(for: BlockKey(-1, 0, 0, 1, 0)).map(Array.init), [1, 2.5])
    }

    func testShellOffsets() {
        let shells = OrbitalShells([0, 0, 1, 2])
        XCTAssertEqual(shells.orbitalCount, 10)
        XCTAssertEqual(shells.shellOffsets, [0, 1, 2, 5])
    }
}
