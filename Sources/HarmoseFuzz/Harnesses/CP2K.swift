// Harness for the CP2K reader (<project>.out, .inp, KS/S CSR matrices) through its in-memory entry
// point. Seed: the water run folder of Tests/Fixtures/cp2k/water, its output cut to the sections read.
import Formats
import Foundation

enum CP2KSeeds {
    static let names = ["water.out", "water.inp", "water-KS_SPIN_1-1_0.csr", "water-S_SPIN_1-1_0.csr"]

    /// The output from its cell to its SCF loop (cell, kinds, basis, coordinates, electrons), and
    /// the Fermi-energy and matrix lines after it: 59 kB → about half; the rest is unread timing and
    /// iteration tables.
    static func readSections(_ out: [UInt8]) -> [UInt8] {
        let lines = String(decoding: out, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
        guard let start = lines.firstIndex(where: { $0.hasPrefix(" CELL|") }),
              let scf = lines.firstIndex(where: { $0.contains("SCF WAVEFUNCTION OPTIMIZATION") }), start < scf else { return out }
        let after = lines[scf...].filter { $0.contains("E(Fermi)") || $0.contains("Fermi energy:") || $0.contains("CSR write|") }
        return Array((lines[start ..< scf] + after).joined(separator: "\n").appending("\n").utf8)
    }

    static func seeds() throws -> [[UInt8]] {
        var files = try names.map { try FuzzFixtures.bytes("cp2k/water/\($0)") }
        files[0] = readSections(files[0])
        return [Members.join(files)]
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
