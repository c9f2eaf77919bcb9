import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import XCTest
import Formats
import HDF5Kit
import Structures
import TestSupport
@testable import Bands

final class DFTBandsTests: XCTestCase {
    private let mote2 = Fixtures.url("peer/deeph-dock/MoTe2")

    /// MoTe2 along its K_PATH against scipy.linalg.eigh (tools/reference_bands.py).
    func testMoTe2MatchesScipyReference() throws {
        let record = try FormatReader.readRecord(at: mote2)
        let system = try BlochSystem(record: record)
        let path = try KPath.read(mote2.appendingPathComponent("K_PATH"))
        let all = path.kpoints
        let data = try Data(contentsOf: Fixtures.url("reference/mote2_bands_scipy.json"))
        let reference = try JSONSerialization.jsonObject(with: data) as! [String: Any]
        XCTAssertEqual(reference["kpoints_total"] as? Int, all.count)
        let points = reference["points"] as! [[String: Any]]
        let ks = points.map { all[$0["index"] as! Int] }
        let (bands, _) = try system.eigenvalues(at: ks)
        XCTAssertEqual(bands.count, 57)
        var worst = 0.0
        for (q, p) in points.enumerated() {
            let k = p["k"] as! [Double]
            XCTAssertLessThan(maxAbsDifference(k, [ks[q].x, ks[q].y, ks[q].z]), 1e-12)
            let want = p["energies_eV"] as! [Double]
            worst = max(worst, maxAbsDifference(bands.map { $0[q] }, want))
        }
        XCTAssertLessThan(worst, 1e-6, "largest deviation from scipy: \(worst) eV")
    }

    func testMoTe2BandStructureOutputs() throws {
        let record = try FormatReader.readRecord(at: mote2)
        let system = try BlochSystem(record: record)
        let path = try KPath.read(mote2.appendingPathComponent("K_PATH"))
        let bs = try BandStructure.compute(system, path: path, fermiEnergy: record.fermiEnergy, electronCount: nil)
        // MoTe2 monolayer is a semiconductor: E_F moves to mid-gap; the gap is direct at K.
        XCTAssertEqual(bs.analysis.isMetal, false)
        let gap = try XCTUnwrap(bs.analysis.bandGap)
        XCTAssertGreaterThan(gap, 0.8)
        XCTAssertLessThan(gap, 1.6)
        XCTAssertEqual(bs.analysis.fermiEnergy!, (bs.analysis.homo! + bs.analysis.lumo!) / 2, accuracy: 1e-12)
        XCTAssertEqual(bs.distances.count, 140)
        XCTAssertEqual(bs.boundaryDistances.count, 4)
        XCTAssertEqual(bs.distances[49], bs.boundaryDistances[1], accuracy: 1e-12)
        // |Γ→M| = |b1|/2/(2π) = 1/(√3 a) for a hexagonal lattice with a = |a1|.
        let a = norm(record.structure.lattice.vectors[0])
        XCTAssertEqual(bs.boundaryDistances[1], 1 / (3.0.squareRoot() * a), accuracy: 1e-9)

        let dir = try makeTemporaryDirectory(self)
        try bs.write(to: dir)
        let f = try HDF5File(readingAt: dir.appendingPathComponent("band.h5").path)
        let bandData = try f.readDoubles("band_data")
        XCTAssertEqual(bandData.shape, [57, 140])
        XCTAssertEqual(try f.readDoubles("fermi_energy_before_shift_eV").values[0], bs.analysis.fermiEnergy!)
        XCTAssertEqual(try f.readDoubles("band_gap").values[0], gap)
        XCTAssertEqual(try f.readInt64s("is_metal").values, [0])
        XCTAssertEqual(try f.readDoubles("kpoints_frac_list").shape, [140, 3])
        XCTAssertEqual(try f.readStrings("hsk_symbol_list").values, ["GAMMA", "M", "M", "K", "K", "GAMMA"])
        XCTAssertEqual(try f.readStrings("hsk_symbol_list").shape, [3, 2])
        // Shifted so that E_F = 0: the highest occupied level is −gap/2.
        XCTAssertEqual(bandData.values.filter { $0 < 0 }.max()!, -gap / 2, accuracy: 1e-12)
        let csv = try String(contentsOf: dir.appendingPathComponent("bands.csv"), encoding: .utf8)
        let lines = csv.split(separator: "\n")
        XCTAssertEqual(lines.count, 141)
        XCTAssertTrue(lines[1].contains(",GAMMA,"))
        XCTAssertEqual(lines[0].split(separator: ",").count, 6 + 57)
        let svg = try String(contentsOf: dir.appendingPathComponent("bands.svg"), encoding: .utf8)
        XCTAssertTrue(svg.hasPrefix("<svg"))
        XCTAssertEqual(svg.components(separatedBy: "<polyline").count - 1, 57)
        XCTAssertTrue(svg.contains(">Γ<") && svg.contains(">M<") && svg.contains(">K<"))
        XCTAssertTrue(svg.contains("stroke-dasharray"))
    }

    /// Molecules: Γ-only, HOMO/LUMO against the values PySCF stored in info.json.
    func testMoleculesReproduceStoredHomoLumo() throws {
        for name in ["water-0020", "ethanol-0046"] {
            let dir = Fixtures.url("datasets/\(name)")
            let record = try FormatReader.readRecord(at: dir)
            let system = try BlochSystem(record: record)
            XCTAssertEqual(system.dispersiveDirections, [false, false, false])
            let info = try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("info.json"))) as! [String: Any]
            let electrons = try XCTUnwrap(record.electronCount)
            let (path, kind) = KPath.standard(for: record.structure.lattice, periodic: system.dispersiveDirections)
            XCTAssertEqual(kind, .molecule)
            // Both ways of fixing E_F must find the same frontier orbitals.
            for fermi in [record.fermiEnergy, nil] {
                let bs = try BandStructure.compute(system, path: path, fermiEnergy: fermi, electronCount: electrons)
                XCTAssertEqual(bs.analysis.isMetal, false, name)
                XCTAssertEqual(bs.analysis.occupiedBands, Int(electrons) / 2, name)
                XCTAssertEqual(bs.analysis.homo!, info["homo_eV"] as! Double, accuracy: 1e-4, name)
                XCTAssertEqual(bs.analysis.lumo!, info["lumo_eV"] as! Double, accuracy: 1e-4, name)
            }
        }
    }

    func testMoS2DensityOfStatesIntegratesToElectronCount() throws {
        let dir = Fixtures.url("datasets/mos2-2x2-0000")
        let record = try FormatReader.readRecord(at: dir)
        let system = try BlochSystem(record: record)
        let electrons = try XCTUnwrap(record.electronCount)
        let dos = try DensityOfStates.compute(system, mesh: SIMD3(2, 2, 1), sigma: 0.1, fermiEnergy: nil, electronCount: electrons)
        XCTAssertEqual(dos.mesh, SIMD3(2, 2, 1))
        // All states: 2 electrons per band. Up to E_F: the electron count.
        XCTAssertEqual(dos.integrated.last!, 2 * Double(dos.bandCount), accuracy: 1e-6)
        let atFermi = dos.energies.firstIndex { $0 >= 0 }!
        XCTAssertEqual(dos.integrated[atFermi], electrons, accuracy: 0.6)
        let out = try makeTemporaryDirectory(self)
        try dos.write(to: out)
        let f = try HDF5File(readingAt: out.appendingPathComponent("dos.h5").path)
        XCTAssertEqual(try f.readDoubles("dos").values.count, dos.energies.count)
        XCTAssertTrue(FileManager.default.fileExists(atPath: out.appendingPathComponent("dos.svg").path))
    }

    /// Supercell bands at K are the primitive bands at every k folding onto K.
    func testSupercellFoldsPrimitiveBands() throws {
        let record = try FormatReader.readRecord(at: mote2)
        let primitive = try BlochSystem(record: record)
        let n = SIMD3(2, 3, 1)
        let big = Supercell.make(record.structure, operators: [record.hamiltonian, record.overlap], repeats: n)
        let sc = try BlochSystem(structure: big.structure, hamiltonian: big.operators[0]!, overlap: big.operators[1])
        XCTAssertEqual(sc.orbitalCount, 57 * 6)
        XCTAssertEqual(big.operators[0]!.hermiticityDeviation().unpaired, [])
        let K = Vec3(0.1, 0.2, 0)
        var folded: [Double] = []
        for m1 in 0 ..< n.x { for m2 in 0 ..< n.y {
            let k = Vec3((K.x + Double(m1)) / Double(n.x), (K.y + Double(m2)) / Double(n.y), 0)
            folded += try primitive.eigenvalues(at: k).values
        } }
        let got = try sc.eigenvalues(at: K).values
        XCTAssertLessThan(maxAbsDifference(got, folded.sorted()), 1e-8)
    }

    /// The same MoTe2 in the DeepH legacy layout (OpenMX orbital order, 1-based atoms, other atom
    /// order) gives the same bands: conventions are converted at the edge, nothing leaks inward.
    func testLegacyLayoutGivesSameBands() throws {
        let dock = try BlochSystem(record: try FormatReader.readRecord(at: mote2))
        let legacy = try BlochSystem(record: try FormatReader.readRecord(at: Fixtures.url("peer/deeph-legacy/MoTe2")))
        let ks = try KPath.read(mote2.appendingPathComponent("K_PATH")).kpoints.enumerated().filter { $0.offset % 23 == 0 }.map(\.element)
        let a = try dock.eigenvalues(at: ks).bands, b = try legacy.eigenvalues(at: ks).bands
        XCTAssertLessThan(maxAbsDifference(a.flatMap { $0 }, b.flatMap { $0 }), 1e-9)
    }

    func testSVGOutputsAreWellFormedXML() throws {
        let record = try FormatReader.readRecord(at: mote2)
        let system = try BlochSystem(record: record)
        let path = try KPath.read(mote2.appendingPathComponent("K_PATH"))
        let bs = try BandStructure.compute(system, path: path, fermiEnergy: record.fermiEnergy, electronCount: nil)
        let dos = try DensityOfStates.compute(system, mesh: SIMD3(3, 3, 1), sigma: 0.1, fermiEnergy: record.fermiEnergy, electronCount: nil)
        for svg in [bs.svg, dos.svg] {
            let doc = try XMLDocument(xmlString: svg, options: [])
            XCTAssertEqual(doc.rootElement()?.name, "svg")
        }
    }
}
