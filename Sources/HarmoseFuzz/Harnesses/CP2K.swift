// Harness for the CP2K reader (<project>.out, .inp, KS/S CSR matrices) through its in-memory entry
// point. Seed: the water run folder of Tests/Fixtures/cp2k/water.
import Formats
import Foundation

enum CP2KSeeds {
    static let names = ["water.out", "water.inp", "water-KS_SPIN_1-1_0.csr", "water-S_SPIN_1-1_0.csr"]

    static func seeds() throws -> [[UInt8]] {
        [Members.join(try names.map { try FuzzFixtures.bytes("cp2k/water/\($0)") })]
    }
}

extension Harnesses {
    static let cp2k = Harness(
        name: "cp2k", summary: "CP2K run folder (output, input, KS/S CSR matrices) read from memory",
        seeds: CP2KSeeds.seeds
    ) { bytes in
        _ = try CP2K.read(members: Members.split(bytes, names: CP2KSeeds.names), name: "fuzz")
    }
}
