// Harnesses for the structure-folder parsers: POSCAR, info.json, DeepH-dock HDF5 tables (in-memory
// HDF5 images, as archive members are read), legacy .dat text files, legacy HDF5 blocks and their
// "[Rx, Ry, Rz, i, j]" keys. Companion files come from the water fixture (legacy: water written
// in the legacy layout once per process), so each harness varies one file of a valid structure.
@testable import Formats
import Foundation
import Structures

enum Water {
    static let dockFolder = "training/water-0000"
    static func dock(_ name: String) throws -> [UInt8] { try FuzzFixtures.bytes("\(dockFolder)/\(name)") }

    /// Water in the DeepH legacy layout, by file name (written once per process).
    static let legacy: [String: [UInt8]] = {
        let out = Scratch.folder.appendingPathComponent("water-legacy")
        guard let record = try? FormatReader.readRecord(at: FuzzFixtures.root.appendingPathComponent(dockFolder)),
              (try? FormatWriter.write(record, to: out, format: .deephLegacy)) != nil,
              let names = try? FileManager.default.contentsOfDirectory(atPath: out.path) else { return [:] }
        var files: [String: [UInt8]] = [:]
        for n in names { files[n] = (try? Data(contentsOf: out.appendingPathComponent(n))).map { [UInt8]($0) } }
        return files
    }()

    static let legacyText = ["lat.dat", "element.dat", "site_positions.dat", "orbital_types.dat", "info.json"]
}

extension Harnesses {
    static let poscar = Harness(
        name: "poscar", summary: "POSCAR text (lattice, species, counts, positions) + lattice and distance checks",
        seeds: { try ["training/water-0000/POSCAR", "peer/deeph-dock/MoTe2/POSCAR", "peer/deeph-dock/Si/POSCAR",
                      "datasets/mos2-2x2-0000/POSCAR", "peer/deeph-dock/H2O-pyscf/POSCAR"].map(FuzzFixtures.bytes) }
    ) { bytes in
        let parsed = try POSCAR.parse(String(decoding: bytes, as: UTF8.self), file: "POSCAR")
        try InputLimits.checkLattice(parsed.lattice, file: "POSCAR", field: "lattice")
        let s = Structure(lattice: parsed.lattice, atomicNumbers: parsed.atomicNumbers, positions: parsed.positions, basis: [:])
        try InputLimits.checkAtomDistances(s, file: "POSCAR", field: "positions")
        // And the whole reader, with water's info.json.
        _ = try DeepHDock.read(MemoryFiles(location: "fuzz", members: ["POSCAR": bytes, "info.json": try Water.dock("info.json")]), name: "fuzz")
    }

    static let infoJSON = Harness(
        name: "info-json", summary: "info.json (DeepH-dock keys, extras, occupation) with water's POSCAR",
        seeds: { try ["training/water-0000/info.json", "peer/deeph-dock/MoTe2/info.json", "datasets/ethanol-0046/info.json",
                      "peer/deeph-legacy/MoTe2/info.json"].map(FuzzFixtures.bytes) }
    ) { bytes in
        let record = try DeepHDock.read(MemoryFiles(location: "fuzz", members: ["POSCAR": try Water.dock("POSCAR"), "info.json": bytes]), name: "fuzz")
        _ = record.electronCount
        _ = try JSONFields.infoText([], extras: record.extraInfo, file: "fuzz")
    }

    static let dockHDF5 = Harness(
        name: "dock-hdf5", summary: "DeepH-dock hamiltonian.h5 / overlap.h5 tables as in-memory HDF5 images",
        seeds: { try [Water.dock("hamiltonian.h5"), Water.dock("overlap.h5")] }
    ) { bytes in
        let files = MemoryFiles(location: "fuzz", members: ["POSCAR": try Water.dock("POSCAR"), "info.json": try Water.dock("info.json"),
                                                            "hamiltonian.h5": bytes])
        let record = try DeepHDock.read(files, name: "fuzz")
        _ = RecordValidation.validate(record)
    }

    static let legacyText = Harness(
        name: "legacy-dat", summary: "DeepH legacy lat.dat, element.dat, site_positions.dat, orbital_types.dat, info.json (NUL-separated)",
        seeds: { [Water.legacyText.map { Water.legacy[$0] ?? [] }.joined(separator: [0]).map { $0 }] }
    ) { bytes in
        let parts = bytes.split(separator: 0, omittingEmptySubsequences: false)
        var members: [String: [UInt8]] = [:]
        for (k, name) in Water.legacyText.enumerated() where k < parts.count { members[name] = Array(parts[k]) }
        _ = try DeepHLegacy.read(MemoryFiles(location: "fuzz", members: members), name: "fuzz")
    }

    static let legacyHDF5 = Harness(
        name: "legacy-hdf5", summary: "DeepH legacy hamiltonians.h5 (one dataset per \"[Rx, Ry, Rz, i, j]\" block) as an in-memory image",
        seeds: { [Water.legacy["hamiltonians.h5"] ?? [], Water.legacy["overlaps.h5"] ?? []] }
    ) { bytes in
        var members = Water.legacy.filter { Water.legacyText.contains($0.key) }
        members["hamiltonians.h5"] = bytes
        _ = try DeepHLegacy.read(MemoryFiles(location: "fuzz", members: members), name: "fuzz")
    }

    static let legacyKey = Harness(
        name: "legacy-key", summary: "\"[Rx, Ry, Rz, i, j]\" block keys of legacy HDF5 files",
        seeds: { ["[0, 0, 0, 1, 1]", "[-1, 2, 0, 3, 12]", "[0,0,0,1,2]", " [ 9223372036854775807, 0, 0, 1, 1 ] "].map { Array($0.utf8) } }
    ) { bytes in
        if let key = DeepHLegacy.parseKey(String(decoding: bytes, as: UTF8.self)) {
            _ = key.transposed
            _ = key.description
        }
    }
}
