// The hostile-input suite of issue #12: a table of command × input kind × fault, each run through
// the built `harmose` binary in a fresh sandbox. Every case asserts: a non-zero exit that is not a
// crash (no signal), a message naming the file (and field where there is one) and the reason, no
// raw Foundation error text, nothing written outside the destination, and no partial output.
// Fault kinds: missing, empty, truncated, garbage, folder-instead-of-file, wrong type, wrong
// shape, out of range, NaN/Inf, huge, duplicate, degenerate geometry, unwritable destination,
// full disk (a small tmpfs, when running as root).
import Foundation
import Formats
import HDF5Kit
import Linalg
import StageAPI
import Structures
import TestSupport
import XCTest

final class HostileSuite: XCTestCase {
    /// One case: how to damage a sandbox, the command to run, and what the message must contain.
    struct Case {
        var label: String
        /// Prepares the sandbox (the water structure is at "s" in DeepH-dock layout, "L" in legacy).
        var damage: (URL) throws -> Void
        var args: [String]
        /// Fragments the error output must contain (file, field, reason), checked case-sensitively.
        var expect: [String]
        /// Paths (relative to the sandbox) the command may create or change.
        var outputs: [String] = ["out"]
    }

    static let water = Fixtures.url("training/water-0000")

    // MARK: Damage helpers

    static func write(_ text: String, _ path: String) -> (URL) throws -> Void {
        { try Data(text.utf8).write(to: $0.appendingPathComponent(path)) }
    }
    static func remove(_ path: String) -> (URL) throws -> Void {
        { try FileManager.default.removeItem(at: $0.appendingPathComponent(path)) }
    }
    static func truncate(_ path: String) -> (URL) throws -> Void {
        { dir in
            let url = dir.appendingPathComponent(path)
            let data = try Data(contentsOf: url)
            try data.prefix(data.count / 2).write(to: url)
        }
    }
    static func garbage(_ path: String) -> (URL) throws -> Void {
        { dir in
            var rng = SplitMix(state: 7)
            try Data((0 ..< 4096).map { _ in UInt8.random(in: 0 ... 255, using: &rng) }).write(to: dir.appendingPathComponent(path))
        }
    }
    static func folderInstead(_ path: String) -> (URL) throws -> Void {
        { dir in
            let url = dir.appendingPathComponent(path)
            try FileManager.default.removeItem(at: url)
            try FileManager.default.createDirectory(at: url, withIntermediateDirectories: false)
        }
    }
    /// Replaces line `n` (1-based) of a text file.
    static func line(_ path: String, _ n: Int, _ text: String) -> (URL) throws -> Void {
        { dir in
            let url = dir.appendingPathComponent(path)
            var lines = try String(contentsOf: url, encoding: .utf8).components(separatedBy: "\n")
            lines[n - 1] = text
            try lines.joined(separator: "\n").write(to: url, atomically: true, encoding: .utf8)
        }
    }
    /// Edits info.json as a JSON object.
    static func info(_ file: String = "s/info.json", _ edit: @escaping (inout [String: Any]) -> Void) -> (URL) throws -> Void {
        { dir in
            let url = dir.appendingPathComponent(file)
            var object = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
            edit(&object)
            try JSONSerialization.data(withJSONObject: object).write(to: url)
        }
    }
    /// Rewrites a DeepH-dock operator file with edited arrays; `intEntries` stores entries as int32.
    static func dock(_ path: String = "s/hamiltonian.h5", intEntries: Bool = false,
                     _ edit: @escaping (inout [Int64], inout [Int64], inout [Int64], inout [Double]) -> Void = { _, _, _, _ in }) -> (URL) throws -> Void {
        { dir in
            let url = dir.appendingPathComponent(path)
            var pairs: [Int64], bounds: [Int64], shapes: [Int64], entries: [Double]
            do {
                let f = try HDF5File(readingAt: url.path)
                pairs = try f.readInt64s("atom_pairs").values
                bounds = try f.readInt64s("chunk_boundaries").values
                shapes = try f.readInt64s("chunk_shapes").values
                entries = try f.readDoubles("entries").values
            }
            edit(&pairs, &bounds, &shapes, &entries)
            try FileManager.default.removeItem(at: url)
            let w = try HDF5File(creatingAt: url.path)
            try w.write("atom_pairs", int64s: pairs, shape: [pairs.count / 5, 5])
            try w.write("chunk_boundaries", int64s: bounds, shape: [bounds.count])
            try w.write("chunk_shapes", int64s: shapes, shape: [shapes.count / 2, 2])
            if intEntries {
                try w.write("entries", int64s: entries.map { Int64($0.rounded()) }, shape: [entries.count])
            } else {
                try w.write("entries", doubles: entries, shape: [entries.count])
            }
            try w.flush()
        }
    }
    /// Rewrites a legacy operator file, editing the (key → values, shape) map.
    static func legacyBlocks(_ path: String = "L/hamiltonians.h5", _ edit: @escaping (inout [String: ([Double], [Int])]) -> Void) -> (URL) throws -> Void {
        { dir in
            let url = dir.appendingPathComponent(path)
            var blocks: [String: ([Double], [Int])] = [:]
            do {
                let f = try HDF5File(readingAt: url.path)
                for k in try f.memberNames() { let a = try f.readDoubles(k); blocks[k] = (a.values, a.shape) }
            }
            edit(&blocks)
            try FileManager.default.removeItem(at: url)
            let w = try HDF5File(creatingAt: url.path)
            for (k, b) in blocks { try w.write(k, doubles: b.0, shape: b.1) }
            try w.flush()
        }
    }
    /// Replaces a sandbox file by a fixture (Tests/Fixtures/…).
    static func copy(_ fixture: String, _ path: String) -> (URL) throws -> Void {
        { dir in
            let url = dir.appendingPathComponent(path)
            try? FileManager.default.removeItem(at: url)
            try FileManager.default.copyItem(at: Fixtures.url(fixture), to: url)
        }
    }
    static func all(_ steps: ((URL) throws -> Void)...) -> (URL) throws -> Void {
        { dir in for s in steps { try s(dir) } }
    }
    static var nothing: (URL) throws -> Void { { _ in } }

    // MARK: The table

    /// Damaged DeepH-dock structures (folder "s"): (label, damage, file fragment, reason fragment).
    static var dockFaults: [(String, (URL) throws -> Void, String, String)] { [
        ("poscar-missing", remove("s/POSCAR"), "s/POSCAR", "missing file"),
        ("poscar-empty", write("", "s/POSCAR"), "POSCAR", "line 2"),
        ("poscar-truncated", truncate("s/POSCAR"), "POSCAR", "the file ends early"),
        ("poscar-garbage", garbage("s/POSCAR"), "POSCAR", "UTF-8"),
        ("poscar-folder", folderInstead("s/POSCAR"), "POSCAR", "cannot read"),
        ("poscar-scale-zero", line("s/POSCAR", 2, "0.0"), "POSCAR", "scale factor"),
        ("poscar-scale-nan", line("s/POSCAR", 2, "nan"), "POSCAR", "scale factor"),
        ("lattice-zero-vector", line("s/POSCAR", 5, "0 0 0"), "POSCAR", "a3 is the zero vector"),
        ("lattice-coplanar", line("s/POSCAR", 5, "20.0 20.0 0.0"), "POSCAR", "degenerate"),
        ("lattice-nan", line("s/POSCAR", 3, "nan 0 0"), "POSCAR", "not a finite number"),
        ("lattice-inf", line("s/POSCAR", 4, "0 inf 0"), "POSCAR", "not a finite number"),
        ("lattice-huge", line("s/POSCAR", 3, "1e300 0 0"), "POSCAR", "longer than"),
        ("lattice-tiny", line("s/POSCAR", 3, "1e-9 0 0"), "POSCAR", "shorter than"),
        ("lattice-wrong-shape", line("s/POSCAR", 3, "20.0 0.0"), "POSCAR", "expected 3 numbers"),
        ("atoms-huge-count", line("s/POSCAR", 7, "1 999999999999"), "POSCAR", "over the limit of 100000"),
        ("atoms-negative-count", line("s/POSCAR", 7, "1 -2"), "POSCAR", "not an atom count"),
        ("atoms-count-overflow", line("s/POSCAR", 7, "1 99999999999999999999999"), "POSCAR", "not an atom count"),
        ("atoms-unknown-element", line("s/POSCAR", 6, "O Xx"), "POSCAR", "unknown element"),
        ("atoms-duplicate-position", line("s/POSCAR", 11, "  10.1803842464 9.8874348433 10.4257536503"), "POSCAR", "atom 0 (O) and atom 2 (H)"),
        ("atoms-too-close", line("s/POSCAR", 11, "  10.1803842464 9.8874348433 10.7257536503"), "POSCAR", "closer than 0.5"),
        ("position-nan", line("s/POSCAR", 9, "  nan 9.88 10.4"), "POSCAR", "not a finite number"),
        ("position-missing", line("s/POSCAR", 11, ""), "POSCAR", "position of atom 2"),
        ("info-missing", remove("s/info.json"), "info.json", "missing file"),
        ("info-empty", write("", "s/info.json"), "info.json", "invalid JSON"),
        ("info-truncated", truncate("s/info.json"), "info.json", "line 1, column"),
        ("info-garbage", garbage("s/info.json"), "info.json", "invalid JSON (line 1, column 1"),
        ("info-folder", folderInstead("s/info.json"), "info.json", "cannot read"),
        ("info-array", write("[1, 2]", "s/info.json"), "info.json", "expected a JSON object"),
        ("info-wrong-type", info { $0["atoms_quantity"] = "three" }, "info.json", "atoms_quantity"),
        ("info-atoms-mismatch", info { $0["atoms_quantity"] = 4 }, "info.json", "atoms_quantity"),
        ("info-orbits-mismatch", info { $0["orbits_quantity"] = 1_000_000_000 }, "info.json", "orbits_quantity"),
        ("info-shell-out-of-range", info { $0["elements_orbital_map"] = ["O": [0, 9], "H": [0]] }, "info.json", "angular momenta 0…6"),
        ("info-shells-huge", info { $0["elements_orbital_map"] = ["O": Array(repeating: 0, count: 1000), "H": [0]] }, "info.json", "over the limit of 64"),
        ("info-unknown-element", info { $0["elements_orbital_map"] = ["Qq": [0]] }, "info.json", "unknown element"),
        ("info-spinful", info { $0["spinful"] = true }, "info.json", "spinful"),
        ("info-occupation-negative", info { $0["occupation"] = -3 }, "info.json", "occupation"),
        ("info-fermi-wrong-type", info { $0["fermi_energy_eV"] = [1] }, "info.json", "fermi_energy_eV"),
        ("info-fermi-nan", write(#"{"atoms_quantity": 3, "fermi_energy_eV": NaN}"#, "s/info.json"), "info.json", "invalid JSON"),
        ("info-duplicate-key", write(#"{"atoms_quantity": 3, "atoms_quantity": 4}"#, "s/info.json"), "info.json", "atoms_quantity"),
        ("h5-empty", write("", "s/hamiltonian.h5"), "hamiltonian.h5", "not an HDF5 file"),
        ("h5-truncated", truncate("s/hamiltonian.h5"), "hamiltonian.h5", "hamiltonian.h5"),
        ("h5-garbage", garbage("s/hamiltonian.h5"), "hamiltonian.h5", "not an HDF5 file"),
        ("h5-folder", folderInstead("s/hamiltonian.h5"), "hamiltonian.h5", "hamiltonian.h5"),
        ("h5-int32-entries", dock(intEntries: true), "hamiltonian.h5", "expected floating point"),
        ("h5-nan-entry", dock { _, _, _, e in e[3] = .nan }, "hamiltonian.h5", "non-finite value"),
        ("h5-inf-entry", dock { _, _, _, e in e[0] = .infinity }, "hamiltonian.h5", "non-finite value"),
        ("h5-atom-out-of-range", dock { p, _, _, _ in p[3] = 7 }, "hamiltonian.h5", "out of range"),
        ("h5-atom-negative", dock { p, _, _, _ in p[4] = -1 }, "hamiltonian.h5", "out of range"),
        ("h5-shift-huge", dock { p, _, _, _ in p[0] = 1 << 40 }, "hamiltonian.h5", "lattice shift"),
        ("h5-shift-int-min", dock { p, _, _, _ in p[1] = Int64.min }, "hamiltonian.h5", "lattice shift"),
        ("h5-duplicate-block", dock { p, _, _, _ in for k in 0 ..< 5 { p[5 + k] = p[k] } }, "hamiltonian.h5", "duplicate block"),
        ("h5-shape-mismatch", dock { _, _, s, _ in s[0] = 3 }, "hamiltonian.h5", "chunk_shapes"),
        ("h5-bounds-negative", dock { _, b, _, _ in b[1] = Int64.min }, "hamiltonian.h5", "chunk_boundaries"),
        ("h5-bounds-wrong-end", dock { _, b, _, _ in b[b.count - 1] += 1 }, "hamiltonian.h5", "chunk_boundaries"),
        ("h5-pairs-wrong-shape", dock { p, _, _, _ in p.removeLast(5); p += [0, 0, 0, 0] + [0] }, "hamiltonian.h5", "hamiltonian.h5"),
        // Damaged files on which libhdf5 1.10 itself segfaults (fuzz findings): parsed in a child process.
        ("h5-libhdf5-segv", copy("fuzz/dock-hdf5/crash-hdf5-segv-in-H5F__accum_read", "s/hamiltonian.h5"), "s/hamiltonian.h5", "HDF5 library crashed (SIGSEGV)"),
        ("overlap-libhdf5-segv", copy("fuzz/legacy-hdf5/crash-hdf5-segv-in-H5F__accum_read", "s/overlap.h5"), "s/overlap.h5", "the file is damaged"),
        ("overlap-empty", write("", "s/overlap.h5"), "overlap.h5", "not an HDF5 file"),
        ("overlap-nan", dock("s/overlap.h5") { _, _, _, e in e[1] = .nan }, "overlap.h5", "non-finite value"),
    ] }

    /// Damaged legacy structures (folder "L").
    static var legacyFaults: [(String, (URL) throws -> Void, String, String)] { [
        ("lat-missing", remove("L/lat.dat"), "lat.dat", "missing file"),
        ("lat-wrong-shape", write("1 0 0\n0 1 0\n", "L/lat.dat"), "lat.dat", "3×3"),
        ("lat-singular", write("20 0 20\n0 20 20\n0 0 0\n", "L/lat.dat"), "lat.dat", "degenerate"),
        ("lat-nan", write("nan 0 0\n0 20 0\n0 0 20\n", "L/lat.dat"), "lat.dat", "not a finite number"),
        ("element-huge", write("1e300\n1\n1\n", "L/element.dat"), "element.dat", "unknown element"),
        ("element-unknown", write("8\n200\n1\n", "L/element.dat"), "element.dat", "unknown element"),
        ("element-empty", write("", "L/element.dat"), "site_positions.dat", "3 rows of 0 numbers"),
        ("sites-wrong-count", write("1 2\n3 4\n5 6\n", "L/site_positions.dat"), "site_positions.dat", "3 rows of 3 numbers"),
        ("sites-duplicate-atom", write("10 10 12\n10 10 10\n10 10 10\n", "L/site_positions.dat"), "site_positions.dat", "atom 1 (O) and atom 2 (H)"),
        ("orbitals-out-of-range", write("0 0 0 1 1 7\n0 0 1\n0 0 1\n", "L/orbital_types.dat"), "orbital_types.dat", "angular momentum 0…6"),
        ("orbitals-inconsistent", write("0 0 0 1 1 2\n0 0 1\n0 1\n", "L/orbital_types.dat"), "orbital_types.dat", "one basis per element"),
        ("legacy-info-nsites", info("L/info.json") { $0["nsites"] = 5 }, "info.json", "nsites"),
        ("key-garbage", legacyBlocks { b in b["not a key"] = b.first!.value }, "hamiltonians.h5", "does not parse"),
        ("key-int-min", legacyBlocks { b in b["[0, 0, 0, -9223372036854775808, 1]"] = b.first!.value }, "hamiltonians.h5", "does not parse"),
        ("key-zero-atom", legacyBlocks { b in b["[0, 0, 0, 0, 1]"] = b.first!.value }, "hamiltonians.h5", "out of range"),
        ("key-duplicate", legacyBlocks { b in b["[0,0,0,1,1]"] = b["[0, 0, 0, 1, 1]"] }, "hamiltonians.h5", "duplicate block"),
        ("block-wrong-shape", legacyBlocks { b in b["[0, 0, 0, 1, 1]"] = ([1, 2, 3], [3]) }, "hamiltonians.h5", "inconsistent"),
        ("blocks-libhdf5-segv", copy("fuzz/legacy-hdf5/crash-hdf5-segv-in-H5F__accum_read", "L/hamiltonians.h5"), "L/hamiltonians.h5", "HDF5 library crashed (SIGSEGV)"),
        ("block-nan", legacyBlocks { b in var v = b["[0, 0, 0, 1, 1]"]!; v.0[0] = .nan; b["[0, 0, 0, 1, 1]"] = v }, "hamiltonians.h5", "non-finite"),
    ] }

    static var cases: [Case] {
        var out: [Case] = []
        for (label, damage, file, reason) in dockFaults {
            out.append(Case(label: "inspect/\(label)", damage: damage, args: ["inspect", "s"], expect: [file, reason], outputs: []))
            out.append(Case(label: "convert/\(label)", damage: damage, args: ["convert", "s", "out", "--to", "deeph-legacy"], expect: [file, reason]))
        }
        for (label, damage, file, reason) in legacyFaults {
            out.append(Case(label: "inspect/\(label)", damage: damage, args: ["inspect", "L"], expect: [file, reason], outputs: []))
            out.append(Case(label: "convert/\(label)", damage: damage, args: ["convert", "L", "out", "--to", "deeph-dock"], expect: [file, reason]))
        }
        // Band structures: the lattice and k-path faults that used to trap or hang.
        for (label, damage, file, reason) in dockFaults where ["lattice-zero-vector", "lattice-coplanar", "atoms-duplicate-position", "h5-int32-entries", "h5-nan-entry"].contains(label) {
            out.append(Case(label: "bands/\(label)", damage: damage, args: ["bands", "s", "--out", "out"], expect: [file, reason]))
            out.append(Case(label: "dos/\(label)", damage: damage, args: ["dos", "s", "--out", "out", "--mesh", "1,1,1"], expect: [file, reason]))
        }
        let kpaths: [(String, String, String)] = [
            ("kpath-huge", "100000000 0 0 0 0.5 0 0 G X\n", "more than 100000 k-points"),
            ("kpath-sum-huge", String(repeating: "60000 0 0 0 0.5 0 0 G X\n", count: 2), "more than 100000 k-points"),
            ("kpath-overflow", "9223372036854775807 0 0 0 0.5 0 0 G X\n9223372036854775807 0 0 0 0.5 0 0 G X\n", "more than 100000 k-points"),
            ("kpath-count-one", "1 0 0 0 0.5 0 0 G X\n", "integer ≥ 2"),
            ("kpath-nan", "10 0 nan 0 0.5 0 0 G X\n", "not a finite number"),
            ("kpath-fields", "10 0 0 0 0.5 0 G X\n", "expected 9 fields"),
            ("kpath-empty", "", "no k-path segments"),
            ("kpath-negative", "-5 0 0 0 0.5 0 0 G X\n", "integer ≥ 2"),
        ]
        for (label, text, reason) in kpaths {
            out.append(Case(label: "bands/\(label)", damage: write(text, "K_PATH"), args: ["bands", "s", "--kpath", "K_PATH", "--out", "out"],
                            expect: ["K_PATH", reason]))
        }
        out.append(Case(label: "bands/kpath-too-big-file", damage: { try Data(repeating: 0x20, count: 2 << 20).write(to: $0.appendingPathComponent("K_PATH")) },
                        args: ["bands", "s", "--kpath", "K_PATH", "--out", "out"], expect: ["K_PATH", "over the limit of 1048576 bytes"]))
        out.append(Case(label: "bands/density-huge", damage: nothing, args: ["bands", "M", "--points-per-inverse-angstrom", "1e12", "--out", "out"],
                        expect: ["k-points, over the limit of 100000"]))
        out.append(Case(label: "bands/density-negative", damage: nothing, args: ["bands", "s", "--points-per-inverse-angstrom", "-1", "--out", "out"],
                        expect: ["--points-per-inverse-angstrom must be positive"]))
        // DOS options: negative numbers parse as numbers and get the option's own check.
        for (label, args, reason) in [
            ("sigma-negative", ["--sigma", "-1"], "--sigma must be a positive number"),
            ("sigma-nan", ["--sigma", "nan"], "--sigma must be a positive number"),
            ("mesh-zero", ["--mesh", "0,1,1"], "mesh"),
            ("mesh-overflow", ["--mesh", "4294967296,4294967296,4294967296"], "mesh"),
            ("mesh-huge", ["--mesh", "1000,1000,1000"], "more than a million"),
            ("mesh-huge-periodic", ["--mesh", "2000,2000,1"], "more than a million"),
        ] {
            out.append(Case(label: "dos/\(label)", damage: nothing, args: ["dos", "s", "--out", "out"] + args, expect: [reason]))
        }
        // Destinations.
        out.append(Case(label: "convert/dst-is-file", damage: write("precious", "out"), args: ["convert", "s", "out", "--to", "deeph-legacy"],
                        expect: ["out", "regular file", "refusing to replace"], outputs: []))
        out.append(Case(label: "convert/dst-parent-is-file", damage: write("precious", "f"), args: ["convert", "s", "f/out", "--to", "deeph-legacy"],
                        expect: ["f", "is a file, not a folder"], outputs: []))
        out.append(Case(label: "convert/dst-foreign-folder", damage: all({ try FileManager.default.createDirectory(at: $0.appendingPathComponent("out"), withIntermediateDirectories: true) }, write("notes", "out/notes.txt")),
                        args: ["convert", "dataset", "out", "--to", "deeph-legacy"], expect: ["out", "refusing to replace"], outputs: []))
        out.append(Case(label: "bands/out-is-file", damage: write("precious", "out"), args: ["bands", "s", "--out", "out"],
                        expect: ["out", "not a folder"], outputs: []))
        out.append(Case(label: "bands/out-parent-is-file", damage: write("precious", "f"), args: ["bands", "s", "--out", "f/out"],
                        expect: ["f", "is a file, not a folder"], outputs: []))
        out.append(Case(label: "dos/out-parent-is-file", damage: write("precious", "f"), args: ["dos", "s", "--mesh", "1,1,1", "--out", "f/out"],
                        expect: ["f", "is a file, not a folder"], outputs: []))
        // An archive whose overlap.h5 makes libhdf5 segfault in a contiguous read (fuzz finding).
        out.append(Case(label: "convert/archive-libhdf5-segv", damage: copy("fuzz/archive/crash-hdf5-segv-in-H5Dread", "a.tar"),
                        args: ["convert", "a.tar", "out", "--to", "deeph-legacy"],
                        expect: ["a.tar", "water/overlap.h5", "/chunk_shapes", "HDF5 library crashed (SIGSEGV)"]))
        out.append(Case(label: "inspect/archive-libhdf5-segv", damage: copy("fuzz/archive/crash-hdf5-segv-in-H5Dread", "a.tar"),
                        args: ["inspect", "a.tar"], expect: ["a.tar", "water/overlap.h5", "the file is damaged"], outputs: []))
        // Pipelines.
        let pipelines: [(String, String, String)] = [
            ("pipeline-invalid-json", #"{"version": 1, "stages": {"#, "1:27: invalid JSON"),
            ("pipeline-unknown-key", #"{"version": 1, "stagez": {}}"#, "stagez"),
            ("pipeline-unknown-kind", #"{"version": 1, "stages": {"a": {"kind": "ingestt", "inputs": {"dataset": "s"}}}}"#, "ingestt"),
            ("pipeline-missing-input", #"{"version": 1, "stages": {"a": {"kind": "ingest", "inputs": {"dataset": "nope"}}}}"#, "nope"),
            ("pipeline-cycle", #"{"version": 1, "stages": {"a": {"kind": "bands", "inputs": {"structures": {"stage": "b"}}}, "b": {"kind": "bands", "inputs": {"structures": {"stage": "a"}}}}}"#, "stages.a.inputs.structures.stage"),
            ("pipeline-wrong-type", #"{"version": "1", "stages": {}}"#, "version"),
            ("pipeline-empty", "", "pipeline.json"),
        ]
        for (label, text, reason) in pipelines {
            out.append(Case(label: "run/\(label)", damage: write(text, "pipeline.json"), args: ["run", "--pipeline", "pipeline.json"],
                            expect: ["pipeline.json", reason], outputs: ["outputs"]))
        }
        // An ingest stage fails on a damaged structure naming it, and leaves no artifact.
        for (label, damage, file, reason) in dockFaults where ["lattice-coplanar", "atoms-duplicate-position", "h5-int32-entries", "info-truncated", "poscar-truncated", "h5-libhdf5-segv"].contains(label) {
            out.append(Case(label: "run-ingest/\(label)", damage: all(damage, write(#"{"version": 1, "stages": {"ingest": {"kind": "ingest", "inputs": {"dataset": "s"}}}}"#, "pipeline.json")),
                            args: ["run", "--pipeline", "pipeline.json"], expect: [file, reason], outputs: ["outputs"]))
        }
        // Training and prediction inputs.
        let configs: [(String, String, String)] = [
            ("config-invalid-json", "{\n  \"epochs\": 2,\n  \"batch_size\": \n}", "line 4, column 1"),
            ("config-wrong-type", #"{"epochs": "two"}"#, "epochs"),
            ("config-negative", #"{"epochs": -2}"#, "epochs"),
            ("config-array", "[1]", "train.json"),
        ]
        for (label, text, reason) in configs {
            out.append(Case(label: "train/\(label)", damage: write(text, "train.json"), args: ["train", "--config", "train.json", "s", "--out", "out"],
                            expect: ["train.json", reason]))
        }
        for (label, damage, reason) in [
            ("checkpoint-missing", nothing, "no such"),
            ("checkpoint-empty", write("", "ckpt.h5"), "not an HDF5 file"),
            ("checkpoint-garbage", garbage("ckpt.h5"), "not an HDF5 file"),
            ("checkpoint-libhdf5-segv", copy("fuzz/dock-hdf5/crash-hdf5-segv-in-H5F__accum_read", "ckpt.h5"), "HDF5 library crashed (SIGSEGV)"),
            ("checkpoint-not-a-model", { (dir: URL) in try FileManager.default.copyItem(at: dir.appendingPathComponent("s/hamiltonian.h5"), to: dir.appendingPathComponent("ckpt.h5")) }, "ckpt.h5"),
        ] as [(String, (URL) throws -> Void, String)] {
            out.append(Case(label: "predict/\(label)", damage: damage, args: ["predict", "--model", "ckpt.h5", "s", "--out", "out"], expect: ["ckpt.h5", reason]))
        }
        return out
    }

    // MARK: Running

    /// A sandbox with water in DeepH-dock layout at s/, in legacy layout at L/, and a folder
    /// dataset at dataset/ (two structures).
    func makeSandbox() throws -> URL {
        let dir = try makeTemporaryDirectory(self)
        try FileManager.default.copyItem(at: Self.water, to: dir.appendingPathComponent("s"))
        try FormatWriter.write(try FormatReader.readRecord(at: Self.water), to: dir.appendingPathComponent("L"), format: .deephLegacy)
        // A periodic crystal without a K_PATH (silicon), read only: a link to the fixture.
        try FileManager.default.createSymbolicLink(at: dir.appendingPathComponent("M"), withDestinationURL: Fixtures.url("peer/deeph-dock/Si"))
        for name in ["w1", "w2"] {
            try FileManager.default.createDirectory(at: dir.appendingPathComponent("dataset"), withIntermediateDirectories: true)
            try FileManager.default.copyItem(at: Self.water, to: dir.appendingPathComponent("dataset/\(name)"))
        }
        return dir
    }

    func check(_ c: Case, in dir: URL, result r: ProcessOutcome, before: TreeSnapshot, outputs: [String]) -> [String] {
        var problems: [String] = []
        let text = r.stderr + r.stdout
        if r.signalled { problems.append("crashed (signal \(r.status))") }
        if r.status == 0 { problems.append("exit status 0") }
        for fragment in c.expect where !text.contains(fragment) { problems.append("message lacks '\(fragment)'") }
        if text.contains("Error Domain=") || text.contains("NSCocoaErrorDomain") { problems.append("raw Foundation error") }
        let changed = TreeSnapshot(dir).changes(since: before, allowing: outputs)
        if !changed.isEmpty { problems.append("written outside the destination: \(changed.prefix(5))") }
        for output in outputs where output != "outputs" {
            let url = dir.appendingPathComponent(output)
            if before.entries[output] == nil, FileManager.default.fileExists(atPath: url.path) {
                problems.append("partial output left at \(output): \(TreeSnapshot(url).entries.keys.sorted().prefix(5))")
            }
        }
        // Hidden temporaries beside the destination are partial output too.
        let leftovers = ((try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []).filter { AtomicOutput.temporaryOwner($0).isTemporary }
        if !leftovers.isEmpty { problems.append("temporaries left: \(leftovers)") }
        if !problems.isEmpty { problems.append("output: \(text.suffix(400))") }
        return problems
    }

    func testEveryHostileCaseFailsCleanly() throws {
        let cases = Self.cases
        XCTAssertGreaterThanOrEqual(cases.count, 150)
        let template = try makeSandbox()
        let root = try makeTemporaryDirectory(self)
        // Cases are independent (one sandbox each): four at a time, each writing its own slot.
        let outcome = UnsafeMutableBufferPointer<String?>.allocate(capacity: cases.count)
        outcome.initialize(repeating: nil)
        defer { outcome.deinitialize(); outcome.deallocate() }
        ConcurrentLoop.perform(iterations: 4) { worker in
            for (k, c) in cases.enumerated() where k % 4 == worker {
                var problems: [String] = []
                do {
                    let dir = root.appendingPathComponent("case-\(k)")
                    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: false)
                    for name in try FileManager.default.contentsOfDirectory(atPath: template.path) {
                        try FileManager.default.copyItem(at: template.appendingPathComponent(name), to: dir.appendingPathComponent(name))
                    }
                    try c.damage(dir)
                    let before = TreeSnapshot(dir)
                    let r = try Harmose.run(c.args, in: dir, timeout: 30)
                    problems = check(c, in: dir, result: r, before: before, outputs: c.outputs)
                    try? FileManager.default.removeItem(at: dir)
                } catch {
                    problems = ["setup failed: \(error)"]
                }
                if !problems.isEmpty { outcome[k] = "\(c.label): \(problems.joined(separator: "; "))" }
            }
        }
        let failures = outcome.compactMap { $0 }
        XCTAssertEqual(failures, [], "\(failures.count) of \(cases.count) cases failed:\n" + failures.joined(separator: "\n"))
        print("HostileSuite: \(cases.count) cases, \(failures.count) failures")
    }
}
