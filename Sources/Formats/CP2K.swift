// CP2K output directories in: the main output file (`*.out`: cell, atomic coordinates, atomic
// kinds with their orbital basis sets, the image → cell-vector table of KS_CSR_WRITE, the Fermi
// energy and MO eigenvalues) and the real-space Kohn–Sham and overlap matrices written as text
// CSR by `&DFT &PRINT &KS_CSR_WRITE` / `&S_CSR_WRITE` with `REAL_SPACE T`, `BINARY F`:
//   <project>-KS_SPIN_1-1_0.csr            (no k-points: R = 0 only)
//   <project>-KS_SPIN_1_R_<image>-1_0.csr  (k-points: one file per periodic image)
// each line "row column value", 1-based over all spherical AOs of the cell, Hartree for KS.
// KS_SPIN_2 files (UKS) make a spinful record, spin block diagonal as for ABACUS nspin = 2.
// When the folder holds exactly one CP2K input (`*.inp`) whose &CELL (A/B/C or ABC) and &COORD
// agree with the output to its printed precision, the input's longer numbers are used (the
// output prints the cell with 3 decimals and coordinates with 6).
//
// Orbital order: atoms in input order; per atom the kind's basis sets, shells and, within a shell,
// CP2K's spherical functions m = −l…l (p: y, z, x) — the internal order, with no sign change up to
// d (CP2K's real solid harmonics have no Condon–Shortley phase; proven on the rotated water pair
// in SO3Tests/CP2KRotationTests; f and above follow the same construction).
// Block convention: the R file holds ⟨i, 0| O |j, R⟩ with R the table's cell vector for atoms
// wrapped into the cell (CP2K's pbc: fractional s − ANINT(s) along periodic directions); we
// renumber R for the positions as given (R + n_i − n_j, n = ANINT(s)). Checked on graphene, whose
// atoms sit at s = (1/3, 2/3) and (2/3, 1/3): s–s overlaps then depend on |r_j + R − r_i| alone,
// and not without the renumbering.
// Units: Hartree → eV with CP2K 2023.1's own constant (CODATA 2006, 27.21138386 eV; the ratio of
// its printed a.u. and eV MO energies is 27.2113838565); lengths are printed in Å.
import Foundation
import Structures

public enum CP2K {
    public static let hartreeToEV = 27.21138386

    /// A folder is a CP2K run when it holds an output file and KS_SPIN_1 CSR files.
    static func isRunDirectory(names: some Sequence<String>) -> Bool {
        let list = Array(names)
        return list.contains { $0.hasSuffix(".out") } && list.contains { $0.contains("-KS_SPIN_1") && $0.hasSuffix(".csr") }
    }

    /// Reads an output folder held in memory (file name → bytes). The entry point for fuzzing.
    public static func read(members: [String: [UInt8]], name: String) throws -> DFTRecord {
        try read(MemoryFiles(location: name, members: members), names: Array(members.keys), name: name)
    }

    public static func readRun(at url: URL) throws -> DFTRecord {
        try read(DirectoryFiles(url: url), names: try FormatReader.directoryFileNames(url), name: url.lastPathComponent)
    }

    static func read(_ files: StructureFiles, names: [String], name: String) throws -> DFTRecord {
        let csr = names.filter { $0.hasSuffix(".csr") }
        let outs = names.filter { $0.hasSuffix(".out") }.filter { o in
            csr.contains { $0.hasPrefix(String(o.dropLast(4)) + "-KS_SPIN_1") }
        }
        guard outs.count == 1, let outName = outs.first else {
            throw FormatError(file: files.displayPath(""), message: outs.isEmpty
                ? "no CP2K output <project>.out beside the <project>-KS_SPIN_1*.csr files"
                : "several CP2K outputs with matrices (\(outs.sorted().joined(separator: ", "))); keep one run per folder")
        }
        let project = String(outName.dropLast(4))
        let out = try Output.parse(try files.text(outName), file: files.displayPath(outName))
        var lattice = out.cell, positions = out.positions
        // Where the geometry comes from, for messages: the input's &CELL/&COORD when it refines
        // the output's rounded table, else the output.
        var geometry = (file: files.displayPath(outName), cell: "CELL| Vector a/b/c", coordinates: "ATOMIC COORDINATES")
        let inputs = names.filter { $0.hasSuffix(".inp") }
        if inputs.count == 1, let refined = try? Input.refine(try files.text(inputs[0]), cell: out.cell, positions: out.positions) {
            lattice = refined.cell; positions = refined.positions
            geometry = (files.displayPath(inputs[0]), "&CELL", "&COORD")
        }
        var structure = Structure(lattice: Lattice(vectors: lattice), atomicNumbers: out.atoms.map(\.atomicNumber),
                                  positions: positions, basis: out.basis)
        // Before the image shifts below convert fractional coordinates to Int.
        try InputLimits.checkLattice(structure.lattice, file: geometry.file, field: geometry.cell)
        try InputLimits.checkCoordinates(structure, file: geometry.file, field: geometry.coordinates)

        let total = structure.totalOrbitals
        // CP2K's image R is relative to atoms wrapped into the cell (pbc: s − ANINT(s) in the
        // periodic directions); ours is relative to the positions as given.
        let wrap: [LatticeShift] = structure.positions.map { p in
            let f = structure.lattice.fractional(p)
            return LatticeShift((0 ..< 3).map { out.periodicity[$0] ? Int(f[$0].rounded()) : 0 })
        }
        var spins: [BlockOperator] = []
        for spin in [1, 2] {
            let prefix = "\(project)-KS_SPIN_\(spin)"
            guard csr.contains(where: { $0.hasPrefix(prefix) }) else { continue }
            spins.append(try operatorFiles(files, csr: csr, prefix: prefix, images: out.images, wrap: wrap, structure: structure, total: total, scale: hartreeToEV))
        }
        let overlap = try operatorFiles(files, csr: csr, prefix: "\(project)-S_SPIN_1", images: out.images, wrap: wrap, structure: structure, total: total, scale: 1)
        let hamiltonian = spins.count == 2 ? ABACUS.spinBlockDiagonal(spins[0], spins[1], structure: structure) : spins[0]
        structure.lattice.periodic = out.images.isEmpty ? [false, false, false] : inferPeriodicity([spins[0], overlap])
        try InputLimits.checkAtomDistances(structure, file: geometry.file, field: geometry.coordinates)
        var extras: [DFTRecord.ExtraInfo] = []
        if let n = out.electrons { extras.append(.init(key: "occupation", json: String(n))) }
        return DFTRecord(name: name, structure: structure, hamiltonian: hamiltonian, overlap: overlap,
                         fermiEnergy: out.fermiEnergy, spinful: spins.count == 2, orthogonalBasis: false, extraInfo: extras)
    }

    /// Reads the per-image files (or the single R = 0 file) of one operator.
    static func operatorFiles(_ files: StructureFiles, csr: [String], prefix: String, images: [LatticeShift], wrap: [LatticeShift],
                              structure: Structure, total: Int, scale: Double) throws -> BlockOperator {
        var entries: [(LatticeShift, Int, Int, Double, String)] = []
        let single = csr.filter { $0.hasPrefix(prefix + "-") }
        let perImage = csr.filter { $0.hasPrefix(prefix + "_R_") }
        if perImage.isEmpty {
            guard single.count == 1 else {
                throw FormatError(file: files.displayPath(prefix + "-1_0.csr"), message: single.isEmpty ? "missing file" : "several files (\(single.joined(separator: ", "))): one SCF print per folder")
            }
            try parseCSR(try files.text(single[0]), file: files.displayPath(single[0]), total: total) { entries.append((.zero, $0, $1, $2 * scale, single[0])) }
        } else {
            for name in perImage {
                let tail = name.dropFirst(prefix.count + 3)
                guard let dash = tail.firstIndex(of: "-"), let image = Int(tail[..<dash]) else {
                    throw FormatError(file: files.displayPath(name), message: "cannot read the image number from the file name")
                }
                guard image >= 1, image <= images.count else {
                    throw FormatError(file: files.displayPath(name), field: "image \(image)", message: "not in the output's table of \(images.count) periodic images")
                }
                let r = images[image - 1]
                try parseCSR(try files.text(name), file: files.displayPath(name), total: total) { entries.append((r, $0, $1, $2 * scale, name)) }
            }
        }
        // Dense blocks per (R, atom i, atom j); CP2K's order within an atom is the internal one.
        let offsets = structure.orbitalOffsets, counts = structure.orbitalCounts
        let atomOf = counts.enumerated().flatMap { a, n in [Int](repeating: a, count: n) }
        var blocks: [BlockKey: [Double]] = [:]
        var filled: [BlockKey: (Int, String)] = [:]
        for (r, row, col, v, file) in entries {
            let a = atomOf[row], b = atomOf[col]
            let key = BlockKey(shift: r &- wrap[b] &+ wrap[a], i: a, j: b)
            if blocks[key] == nil { blocks[key] = [Double](repeating: 0, count: counts[a] * counts[b]) }
            blocks[key]![(row - offsets[a]) * counts[b] + col - offsets[b]] = v
            filled[key, default: (0, file)].0 += 1
        }
        // CP2K prints whole atomic blocks (every element of a block with any nonzero element), so
        // a partial block means a truncated file (or a THRESHOLD in the print section).
        for key in filled.keys.sorted() where filled[key]!.0 != counts[key.i] * counts[key.j] {
            let (n, file) = filled[key]!
            throw FormatError(file: files.displayPath(file), field: "atoms \(key.i + 1), \(key.j + 1)",
                              message: "\(n) of the block's \(counts[key.i] * counts[key.j]) elements: truncated file, or a THRESHOLD in &KS_CSR_WRITE/&S_CSR_WRITE (whole blocks are needed)")
        }
        var op = BlockOperator()
        for key in blocks.keys.sorted() { op.append(key, rows: counts[key.i], cols: counts[key.j], values: blocks[key]!) }
        return op
    }

    /// "row col value" lines, 1-based; `body` gets 0-based indices.
    static func parseCSR(_ text: String, file: String, total: Int, _ body: (Int, Int, Double) -> Void) throws {
        if !text.isEmpty, !text.hasSuffix("\n") {
            throw FormatError(file: file, field: "last line", message: "the file does not end with a newline (truncated?)")
        }
        var seen = Set<Int>()
        for (k, line) in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).enumerated() {
            let f = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            if f.isEmpty { continue }
            guard f.count == 3, let r = Int(f[0]), let c = Int(f[1]) else {
                throw FormatError(file: file, field: "line \(k + 1)", message: "expected 'row column value', found '\(line.prefix(60))'")
            }
            guard let v = Double(f[2]), v.isFinite else {
                throw FormatError(file: file, field: "line \(k + 1): value", message: "'\(f[2])' is not a finite number")
            }
            guard (1 ... total).contains(r), (1 ... total).contains(c) else {
                throw FormatError(file: file, field: "line \(k + 1): row/column", message: "(\(r), \(c)) out of range 1…\(total) (the basis in the output has \(total) spherical functions)")
            }
            guard seen.insert((r - 1) * total + c - 1).inserted else {
                throw FormatError(file: file, field: "line \(k + 1)", message: "entry (\(r), \(c)) given twice")
            }
            body(r - 1, c - 1, v)
        }
    }

    // MARK: - The output file

    struct Output {
        struct Atom { var kind: Int; var atomicNumber: Int }
        var cell: [Vec3] = []
        var atoms: [Atom] = []
        var positions: [Vec3] = []
        var basis: [Int: OrbitalShells] = [:]
        var images: [LatticeShift] = []
        /// "CELL| Periodicity": which directions CP2K wraps.
        var periodicity: [Bool] = [true, true, true]
        var fermiEnergy: Double?
        var electrons: Int?

        static func parse(_ text: String, file: String) throws -> Output {
            var o = Output()
            let lines = text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline)
            var kindShells: [Int: [Int]] = [:]
            var currentKind: Int?
            var lastShell: (Int, Int)?
            var k = 0
            func fail(_ field: String, _ message: String) -> FormatError { FormatError(file: file, field: "line \(k + 1): \(field)", message: message) }
            while k < lines.count {
                let line = lines[k]
                let t = line.trimmingCharacters(in: .whitespaces)
                if t.hasPrefix("CELL| Vector "), o.cell.count < 3, let colon = t.firstIndex(of: ":") {
                    let f = t[t.index(after: colon)...].split(separator: " ").prefix(3).compactMap { Double($0) }
                    guard f.count == 3 else { throw fail("CELL| Vector", "expected three numbers") }
                    o.cell.append(Vec3(f[0], f[1], f[2]))
                } else if t.hasPrefix("MODULE QUICKSTEP: ATOMIC COORDINATES IN ANGSTROM") || t.hasPrefix("MODULE QUICKSTEP:  ATOMIC COORDINATES IN angstrom") {
                    o.atoms = []; o.positions = []
                    k += 3
                    while k < lines.count {
                        let f = lines[k].split(separator: " ")
                        guard f.count >= 8, Int(f[0]) != nil else { break }
                        guard let z = Int(f[3]), Elements.symbol(of: z) != nil, let x = Double(f[4]), let y = Double(f[5]), let zz = Double(f[6]) else {
                            throw fail("ATOMIC COORDINATES", "cannot read '\(lines[k])'")
                        }
                        guard let kind = Int(f[1]) else { throw fail("ATOMIC COORDINATES", "cannot read the kind of '\(lines[k])'") }
                        o.atoms.append(Atom(kind: kind, atomicNumber: z))
                        o.positions.append(Vec3(x, y, zz))
                        k += 1
                    }
                    continue
                } else if t.range(of: "Atomic kind:") != nil, let dot = t.firstIndex(of: "."), let index = Int(t[..<dot]) {
                    currentKind = index
                    lastShell = nil
                    if let c = currentKind { kindShells[c] = [] }
                } else if let kind = currentKind {
                    // "Set   Shell   Orbital   Exponent   Coefficient" rows: "1  3  3px  10.38  -1.53"
                    let f = t.split(separator: " ")
                    if f.count >= 5, let set = Int(f[0]), let shell = Int(f[1]), let letter = f[2].first(where: { $0.isLetter }),
                       Double(f[3]) != nil, Double(f[4]) != nil {
                        guard let l = "spdfghi".firstIndex(of: letter).map({ "spdfghi".distance(from: "spdfghi".startIndex, to: $0) }) else {
                            throw fail("Orbital", "unknown shell '\(f[2])'")
                        }
                        if lastShell.map({ $0 != (set, shell) }) ?? true { kindShells[kind]!.append(l); lastShell = (set, shell) }
                    } else if t.hasPrefix("GTH Potential information") || t.hasPrefix("Potential information") || t.hasPrefix("MOLECULE KIND INFORMATION") {
                        currentKind = nil
                    }
                }
                if t.hasPrefix("KS CSR write|"), t.hasSuffix("periodic images"), o.images.isEmpty {
                    guard let n = t.split(separator: " ").dropLast(2).last.flatMap({ Int($0) }) else { throw fail("KS CSR write", "cannot read the image count") }
                    k += 2
                    for _ in 0 ..< n {
                        let f = k < lines.count ? lines[k].split(separator: " ").compactMap { Int($0) } : []
                        guard f.count == 4 else { throw fail("KS CSR write image table", "expected 'number x y z', found '\(k < lines.count ? String(lines[k]) : "end of file")'") }
                        o.images.append(LatticeShift(f[1], f[2], f[3]))
                        k += 1
                    }
                    continue
                }
                if t.hasPrefix("CELL| Periodicity"), let p = t.split(separator: " ").last {
                    o.periodicity = ["X", "Y", "Z"].map { p.contains($0) }
                }
                if t.hasPrefix("Fermi energy:"), let v = t.split(separator: " ").last.flatMap({ Double($0) }) {
                    o.fermiEnergy = v * CP2K.hartreeToEV
                } else if t.hasPrefix("MO| E(Fermi):"), let v = t.split(separator: " ").dropFirst(2).first.flatMap({ Double($0) }) {
                    o.fermiEnergy = v * CP2K.hartreeToEV
                } else if t.hasPrefix("Number of electrons:"), o.electrons == nil, let n = t.split(separator: " ").last.flatMap({ Int($0) }) {
                    o.electrons = n
                }
                k += 1
            }
            guard o.cell.count == 3 else { throw FormatError(file: file, field: "CELL| Vector", message: "missing: not a CP2K output (or an unknown version)") }
            guard !o.atoms.isEmpty else { throw FormatError(file: file, field: "ATOMIC COORDINATES IN ANGSTROM", message: "missing (run with PRINT_LEVEL MEDIUM or higher)") }
            for atom in o.atoms {
                guard let shells = kindShells[atom.kind], !shells.isEmpty else {
                    throw FormatError(file: file, field: "Atomic kind: \(atom.kind)", message: "no orbital basis set listed (run with PRINT_LEVEL MEDIUM or higher)")
                }
                if let known = o.basis[atom.atomicNumber], known.ls != shells {
                    throw FormatError(file: file, field: "Atomic kind: \(atom.kind)", message: "shells [\(shells)] differ from another kind of the same element; one basis per element is required")
                }
                o.basis[atom.atomicNumber] = OrbitalShells(shells)
            }
            return o
        }
    }

    // MARK: - The input file (precision only)

    enum Input {
        /// The &CELL and &COORD of a simple input, when they agree with the output's.
        static func refine(_ text: String, cell: [Vec3], positions: [Vec3]) throws -> (cell: [Vec3], positions: [Vec3])? {
            var vectors: [Int: Vec3] = [:]
            var coords: [Vec3] = []
            var scaled = false, inCell = false, inCoord = false
            for raw in text.split(whereSeparator: \.isNewline) {
                let line = raw.split(separator: "!")[0].split(separator: "#").first ?? ""
                let f = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
                guard let head = f.first?.uppercased() else { continue }
                if head == "&CELL" { inCell = true; continue }
                if head == "&COORD" { inCoord = true; continue }
                if head.hasPrefix("&END") { inCell = false; inCoord = false; continue }
                let numbers = f.dropFirst().compactMap { Double($0) }
                if inCell {
                    if ["A", "B", "C"].contains(head), numbers.count == 3 { vectors[["A", "B", "C"].firstIndex(of: head)!] = Vec3(numbers[0], numbers[1], numbers[2]) }
                    if head == "ABC", numbers.count == 3 { for i in 0 ..< 3 { var v = Vec3.zero; v[i] = numbers[i]; vectors[i] = v } }
                    if head == "UNIT" || head == "ALPHA_BETA_GAMMA" || head == "CELL_FILE_NAME" || head == "MULTIPLE_UNIT_CELL" { return nil }
                } else if inCoord {
                    if head == "SCALED" { scaled = f.count == 1 || ["T", ".TRUE.", "TRUE", "YES"].contains(f[1].uppercased()); continue }
                    if head == "UNIT" { return nil }
                    if numbers.count == 3 { coords.append(Vec3(numbers[0], numbers[1], numbers[2])) }
                }
            }
            guard vectors.count == 3, coords.count == positions.count else { return nil }
            let v = (0 ..< 3).map { vectors[$0]! }
            let lattice = Lattice(vectors: v)
            let cart = scaled ? coords.map { lattice.cartesian($0) } : coords
            for (a, b) in zip(v, cell) where norm(a - b) > 2e-3 { return nil }
            for (a, b) in zip(cart, positions) where norm(a - b) > 2e-5 { return nil }
            return (v, cart)
        }
    }
}
