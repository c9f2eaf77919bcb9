import Foundation
import XCTest
import TestSupport
@testable import SO3

final class IrrepsTests: XCTestCase {
    func testParsePrintAndDimensions() throws {
        let irreps = try Irreps("64x0e+32x1o+16x2e")
        XCTAssertEqual(irreps.description, "64x0e+32x1o+16x2e")
        XCTAssertEqual(irreps.dim, 64 + 32 * 3 + 16 * 5)
        XCTAssertEqual(irreps.count, 112)
        XCTAssertEqual(irreps.lmax, 2)
        XCTAssertEqual(irreps.slices, [0 ..< 64, 64 ..< 160, 160 ..< 240])
        XCTAssertEqual(try Irreps(" 2x1o + 3e + 0x4y ").description, "2x1o+1x3e+0x4e")
        XCTAssertEqual(try Irreps("").dim, 0)
        XCTAssertEqual(try Irrep("3y"), try Irrep(3, -1))
        XCTAssertEqual(try Irreps("8x3o+8x4e").ls.count, 16)
        XCTAssertEqual(Irreps.sphericalHarmonics(lmax: 3).description, "1x0e+1x1o+1x2e+1x3o")
        XCTAssertEqual(Irreps.sphericalHarmonics(lmax: -1).dim, 0)
        XCTAssertEqual(try Irreps("1x1o+2x1e+1x1o").multiplicity(of: try Irrep("1o")), 2)
    }

    func testSimplifySortAndParity() throws {
        let irreps = try Irreps("2x1o+3x1o+0x2e+1x0e+1x1e+4x1o")
        XCTAssertEqual(irreps.simplified().description, "5x1o+1x0e+1x1e+4x1o")
        let (sorted, perm, inverse) = irreps.sorted()
        XCTAssertEqual(sorted.description, "1x0e+2x1o+3x1o+4x1o+1x1e+0x2e")
        XCTAssertEqual(inverse, [3, 0, 1, 5, 4, 2])
        XCTAssertEqual(perm.indices.map { inverse[perm[$0]] }, Array(perm.indices))
        XCTAssertEqual(irreps.regrouped().description, "1x0e+9x1o+1x1e")
        XCTAssertEqual((try Irrep("1o")) * (try Irrep("2o")), [try Irrep("1e"), try Irrep("2e"), try Irrep("3e")])
        XCTAssertTrue(try Irreps("1x0e+1x1o+1x2e").isSphericalHarmonicParity)
        XCTAssertFalse(try Irreps("1x1e").isSphericalHarmonicParity)
        XCTAssertTrue(try Irrep("0o") > Irrep("0e"))
    }

    func testCodableAsString() throws {
        struct Config: Codable { var hidden: Irreps }
        let data = try JSONEncoder().encode(Config(hidden: try Irreps("64x0e+32x1o")))
        XCTAssertEqual(String(decoding: data, as: UTF8.self), #"{"hidden":"64x0e+32x1o"}"#)
        XCTAssertEqual(try JSONDecoder().decode(Config.self, from: data).hidden, try Irreps("64x0e+32x1o"))
        XCTAssertThrowsError(try JSONDecoder().decode(Config.self, from: Data(#"{"hidden":"64x0q"}"#.utf8))) {
            XCTAssertTrue("\($0)".contains("64x0q"), "\($0)")
        }
    }

    func testBadStringsGiveClearErrors() {
        for bad in ["64x", "x1o", "1x1q", "1o++2e", "-1x1o", "1x-1o", "2x2x1o", "1.5x1o", "ab", "1x1", "+1o"] {
            XCTAssertThrowsError(try Irreps(bad), bad) { error in
                let text = "\(error)"
                XCTAssertTrue(text.contains("invalid irreps string \"\(bad)\""), text)
            }
        }
    }
}
