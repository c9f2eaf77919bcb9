import XCTest
@testable import Bands

final class AnalysisTests: XCTestCase {
    // Three bands over five k-points, band-major.
    private let insulator: [[Double]] = [[-3, -2.5, -2, -2.5, -3], [-1, -0.8, -0.5, -0.8, -1], [1, 0.7, 0.4, 0.7, 1]]
    private let metal: [[Double]] = [[-3, -2.5, -2, -2.5, -3], [-1, -0.3, 0.5, 0.9, 1.2], [2, 2.1, 2.2, 2.1, 2]]

    func testInsulatorWithFermiEnergyMovesToMidGap() {
        let a = BandAnalysis.analyze(bands: insulator, fermiEnergy: 0.1, electronCount: nil)
        XCTAssertEqual(a.isMetal, false)
        XCTAssertEqual(a.occupiedBands, 2)
        XCTAssertEqual(a.homo, -0.5)
        XCTAssertEqual(a.lumo, 0.4)
        XCTAssertEqual(a.bandGap!, 0.9, accuracy: 1e-15)
        XCTAssertEqual(a.fermiEnergy!, -0.05, accuracy: 1e-15)
    }

    func testMetalKeepsFermiEnergy() {
        let a = BandAnalysis.analyze(bands: metal, fermiEnergy: 0.0, electronCount: nil)
        XCTAssertEqual(a.isMetal, true)
        XCTAssertEqual(a.bandGap, 0)
        XCTAssertEqual(a.fermiEnergy, 0)
    }

    func testElectronCountFillsBands() {
        let a = BandAnalysis.analyze(bands: insulator, fermiEnergy: nil, electronCount: 4)
        XCTAssertEqual(a.isMetal, false)
        XCTAssertEqual(a.fermiEnergy!, -0.05, accuracy: 1e-15)
        // 3 electrons: half-filled second band → metal, E_F splits the sorted levels at 1.5 bands·k.
        let m = BandAnalysis.analyze(bands: insulator, fermiEnergy: nil, electronCount: 3)
        XCTAssertEqual(m.isMetal, true)
        let sorted = insulator.flatMap { $0 }.sorted()
        XCTAssertEqual(m.fermiEnergy!, (sorted[7] + sorted[8]) / 2, accuracy: 1e-15)
        let none = BandAnalysis.analyze(bands: insulator, fermiEnergy: nil, electronCount: nil)
        XCTAssertNil(none.fermiEnergy)
        XCTAssertNil(none.isMetal)
    }
}
