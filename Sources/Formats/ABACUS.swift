// ABACUS (LCAO) run directories in: STRU (cell, species, positions), running_scf.log (orbital
// layout per atom type, nspin, Fermi energy, electron count) and the sparse H(R)/S(R) text files in
// both namings ABACUS has used:
//   ≤ 3.9.0.x  OUT.<suffix>/data-HR-sparse_SPIN0.csr (SPIN1 for nspin = 2), data-SR-sparse_SPIN0.csr
//              "STEP: 0" / "Matrix Dimension of H(R): N" / "Matrix number of H(R): M", then per R
//              "Rx Ry Rz nnz" and, when nnz > 0, one line each of values, column indices, row pointers;
//   newer      OUT.<suffix>/hrs1_nao.csr (hrs2_nao.csr), srs1_nao.csr (or sr_nao.csr): a commented
//              header (" --- Ionic Step 1 ---", "N # number of localized basis", "M # number of
//              Bravais lattice vector R"), the unit cell, then per R "Rx Ry Rz nnz" and the three
//              arrays after "# CSR values" / "# CSR column indices" / "# CSR row pointers".
// Matrices are in Rydberg (H) and the CSR rows/columns run over all orbitals of the cell: atoms in
// STRU order (grouped by type), per atom l = 0, 1, …, the zetas of each l, then m in ABACUS order
// (m = 0, +1, −1, …; converted with signs through `OrbitalOrder.abacusIndex`). A nonzero entry at
// (row, column) of the R matrix is ⟨row, 0| O |column, R⟩, the internal block convention.
//
// Units: ABACUS's own constants (source/module_base/constants.h): Ry_to_eV = 13.605698 and
// BOHR_TO_A = 0.5291770, so energies match the eV that ABACUS prints itself (istate.info, EFERMI).
// CODATA 2018 differs by 3.6e-7 (Ry) and 4.0e-7 (Bohr) relative: 0.02 meV at 60 eV.
//
// nspin = 2: H(R) comes in two files; the record is spinful with each block (2n_i × 2n_j) block
// diagonal in spin, spin outermost (rows 0..<n_i spin up, n_i..<2n_i spin down); S is spinless.
// nspin = 4 (noncollinear / SOC): refused with a message saying so.
import Foundation
import Structures

public enum ABACUS {
    public static let rydbergToEV = 13.605698
    public static let bohrToAngstrom = 0.5291770
    /// ABACUS drops |value| ≤ 1e-10 from its CSR output (`sparse_threshold`).
    public static let sparseThreshold = 1e-10

    static let logFile = "running_scf.log"
    static let struFile = "STRU"
    static let inputFile = "INPUT"
    /// Every ABACUS file name a run directory may contribute (for archive member selection).
    static let knownOutFiles: Set<String> = [logFile, "data-HR-sparse_SPIN0.csr", "data-HR-sparse_SPIN1.csr",
                                             "data-SR-sparse_SPIN0.csr", "hrs1_nao.csr", "hrs2_nao.csr",
                                             "srs1_nao.csr", "sr_nao.csr"]
    static let knownRunFiles: Set<String> = [struFile, inputFile]

    /// The OUT.<suffix> folder among the relative file paths of a run directory.
    static func outFolder(amongPaths paths: some Sequence<String>, location: String) throws -> String? {
        var found = Set<String>()
        for p in paths {
            let parts = p.split(separator: "/")
            if parts.count == 2, parts[0].hasPrefix("OUT."), parts[1] == logFile { found.insert(String(parts[0])) }
        }
        if found.count > 1 {
            throw FormatError(file: location, message: "several ABACUS output folders (\(found.sorted().joined(separator: ", "))); give one of them as the path")
        }
        return found.first
    }

    /// Whether a folder is an ABACUS run directory (STRU and OUT.*/running_scf.log) or an OUT.*
    /// folder (running_scf.log, with STRU one level up).
    static func isRunDirectory(_ url: URL) -> Bool {
        let fm = FileManager.default
        if fm.fileExists(atPath: url.appendingPathComponent(logFile).path) { return true }
        guard fm.fileExists(atPath: url.appendingPathComponent(struFile).path),
              let names = try? fm.contentsOfDirectory(atPath: url.path) else { return false }
        return names.contains { $0.hasPrefix("OUT.") && fm.fileExists(atPath: url.appendingPathComponent($0).appendingPathComponent(logFile).path) }
    }

    /// The run directory and OUT folder name for a path that is either.
    static func runLocation(_ url: URL) throws -> (run: URL, out: String) {
        let fm = FileManager.default
        if fm.fileExists(atPath: url.appendingPathComponent(logFile).path) {
            return (url.deletingLastPathComponent(), url.standardizedFileURL.lastPathComponent)
        }
        let names = try FormatReader.directoryFileNames(url).map { "\($0)/\(logFile)" }
            .filter { fm.fileExists(atPath: url.appendingPathComponent($0).path) }
        guard let out = try outFolder(amongPaths: names, location: url.path) else {
            throw FormatError(file: url.path, message: "not an ABACUS run directory: no OUT.*/running_scf.log")
        }
        return (url, out)
    }

    /// Reads a run held in memory: relative paths (`STRU`, `INPUT`, `OUT.<suffix>/running_scf.log`,
    /// `OUT.<suffix>/data-HR-sparse_SPIN0.csr`, …) to bytes. The entry point for fuzzing.
    public static func read(members: [String: [UInt8]], name: String) throws -> DFTRecord {
        let files = MemoryFiles(location: name, members: members)
        guard let out = try outFolder(amongPaths: members.keys, location: name) else {
            throw FormatError(file: files.displayPath("OUT.*/running_scf.log"), message: "missing file (an ABACUS run directory needs its OUT.* folder)")
        }
        return try read(files, out: out, name: name)
    }

    /// Reads a run directory (or an OUT.* folder) on disk.
    public static func readRun(at url: URL) throws -> DFTRecord {
        let (run, out) = try runLocation(url.standardizedFileURL)
        return try read(DirectoryFiles(url: run), out: out, name: run.lastPathComponent)
    }

    // MARK: Reading

    static func read(_ files: StructureFiles, out: String, name: String) throws -> DFTRecord {
        let logName = "\(out)/\(logFile)"
        let log = try RunLog.parse(try files.text(logName), file: files.displayPath(logName))
        guard files.contains(struFile) else {
            throw FormatError(file: files.displayPath(struFile), message: "missing file (an OUT.* folder is read with the STRU of its run directory, one level up)")
        }
        let input = files.contains(inputFile) ? try files.text(inputFile) : nil
        let stru = try STRU.parse(try files.text(struFile), file: files.displayPath(struFile), input: input)

        // STRU and the log must describe the same atoms.
        let struTypes = stru.species.map { ($0.label, $0.positions.count) }
        let logTypes = log.types.map { ($0.label, $0.atomCount) }
        guard struTypes.map(\.0) == logTypes.map(\.0), struTypes.map(\.1) == logTypes.map(\.1) else {
            throw FormatError(file: files.displayPath(logName), field: "READING ATOM TYPE",
                              message: "atom types \(logTypes.map { "\($0.0)×\($0.1)" }) disagree with STRU's \(struTypes.map { "\($0.0)×\($0.1)" })")
        }
        var basis: [Int: OrbitalShells] = [:]
        var atomicNumbers: [Int] = [], positions: [Vec3] = []
        for (species, type) in zip(stru.species, log.types) {
            let shells = OrbitalShells(type.zetas.enumerated().flatMap { l, n in [Int](repeating: l, count: n) })
            if let known = basis[species.atomicNumber], known != shells {
                throw FormatError(file: files.displayPath(logName), field: "atom label = \(type.label)",
                                  message: "shells [\(shells)] differ from another type of the same element ([\(known)]); one basis per element is required")
            }
            basis[species.atomicNumber] = shells
            atomicNumbers += [Int](repeating: species.atomicNumber, count: species.positions.count)
            positions += species.positions
        }
        var structure = Structure(lattice: Lattice(vectors: stru.lattice), atomicNumbers: atomicNumbers,
                                  positions: positions, basis: basis)
        try InputLimits.checkLattice(structure.lattice, file: files.displayPath(struFile), field: "LATTICE_VECTORS")
        if let nlocal = log.nlocal, nlocal != structure.totalOrbitals {
            throw FormatError(file: files.displayPath(logName), field: "NLOCAL",
                              message: "\(nlocal) orbitals, but the shells per type give \(structure.totalOrbitals)")
        }
        if log.nspin == 4 {
            throw FormatError(file: files.displayPath(logName), field: "nspin",
                              message: "nspin = 4 (noncollinear or spin–orbit) is not yet supported; nspin = 1 and 2 are")
        }

        let names = try matrixNames(files, out: out, nspin: log.nspin)
        let layout = OrbitalLayout(structure)
        let hSpins = try names.h.map { n in
            try CSRText.parse(try files.text(n), file: files.displayPath(n), layout: layout, scale: rydbergToEV)
        }
        let overlap = try CSRText.parse(try files.text(names.s), file: files.displayPath(names.s), layout: layout, scale: 1)
        let hamiltonian = hSpins.count == 1 ? hSpins[0] : spinBlockDiagonal(hSpins[0], hSpins[1], structure: structure)
        structure.lattice.periodic = inferPeriodicity([hSpins[0], overlap])
        try InputLimits.checkAtomDistances(structure, file: files.displayPath(struFile), field: "ATOMIC_POSITIONS")
        var extras: [DFTRecord.ExtraInfo] = []
        if let n = log.electrons {
            extras.append(.init(key: "occupation", json: n == n.rounded() && abs(n) < 1e15 ? String(Int(n)) : "\(n)"))
        }
        return DFTRecord(name: name, structure: structure, hamiltonian: hamiltonian, overlap: overlap,
                         fermiEnergy: log.fermiEnergy, spinful: log.nspin == 2, orthogonalBasis: false,
                         extraInfo: extras)
    }

    /// The H files (one per spin) and the S file present in the OUT folder.
    static func matrixNames(_ files: StructureFiles, out: String, nspin: Int) throws -> (h: [String], s: String) {
        let legacy = (h: ["data-HR-sparse_SPIN0.csr", "data-HR-sparse_SPIN1.csr"], s: ["data-SR-sparse_SPIN0.csr"])
        let nao = (h: ["hrs1_nao.csr", "hrs2_nao.csr"], s: ["srs1_nao.csr", "sr_nao.csr"])
        for naming in [legacy, nao] where files.contains("\(out)/\(naming.h[0])") {
            let h = naming.h.prefix(nspin).map { "\(out)/\($0)" }
            for n in h where !files.contains(n) {
                throw FormatError(file: files.displayPath(n), message: "missing file (running_scf.log says nspin = \(nspin))")
            }
            guard let s = naming.s.map({ "\(out)/\($0)" }).first(where: files.contains) else {
                throw FormatError(file: files.displayPath("\(out)/\(naming.s[0])"), message: "missing file (the overlap S(R))")
            }
            return (h, s)
        }
        throw FormatError(file: files.displayPath(out), message: "no H(R) file: expected data-HR-sparse_SPIN0.csr or hrs1_nao.csr (run ABACUS with out_mat_hs2 1)")
    }

    static func spinBlockDiagonal(_ up: BlockOperator, _ down: BlockOperator, structure: Structure) -> BlockOperator {
        let counts = structure.orbitalCounts
        var out = BlockOperator()
        for key in Set(up.keys).union(down.keys).sorted() {
            let ni = counts[key.i], nj = counts[key.j]
            var block = [Double](repeating: 0, count: 4 * ni * nj)
            for (spin, op) in [(0, up), (1, down)] {
                guard let values = op.values(for: key) else { continue }
                for (k, v) in values.enumerated() {
                    block[(spin * ni + k / nj) * 2 * nj + spin * nj + k % nj] = v
                }
            }
            out.append(key, rows: 2 * ni, cols: 2 * nj, values: block)
        }
        return out
    }

    /// Spin σ (0 up, 1 down) of a spin-block-diagonal H read from an nspin = 2 run.
    public static func spinComponent(_ op: BlockOperator, spin: Int) -> BlockOperator {
        var out = BlockOperator()
        for (b, key) in op.keys.enumerated() {
            let shape = op.shape(at: b)
            let ni = shape.x / 2, nj = shape.y / 2
            let values = Array(op.values(at: b))
            var block: [Double] = []
            block.reserveCapacity(ni * nj)
            for r in 0 ..< ni { for c in 0 ..< nj { block.append(values[(spin * ni + r) * shape.y + spin * nj + c]) } }
            out.append(key, rows: ni, cols: nj, values: block)
        }
        return out
    }
}

/// Where each orbital of the cell sits: its atom, its position within the atom in ABACUS order,
/// and the internal index and sign it maps to.
struct OrbitalLayout {
    let atomOfOrbital: [Int]
    let offsets: [Int]
    let counts: [Int]
    /// Per atom: internal k = sign[k] · abacus[index[k]].
    let index: [[Int]]
    let sign: [[Double]]
    var total: Int { atomOfOrbital.count }

    init(_ s: Structure) {
        offsets = s.orbitalOffsets
        counts = s.orbitalCounts
        atomOfOrbital = counts.enumerated().flatMap { a, n in [Int](repeating: a, count: n) }
        let tables = s.atomicNumbers.map { OrbitalOrder.abacusIndex(shells: s.basis[$0]!) }
        index = tables.map(\.index)
        sign = tables.map(\.sign)
    }
}

// MARK: - running_scf.log

struct RunLog {
    struct AtomType { var label: String; var zetas: [Int]; var atomCount: Int }
    var types: [AtomType] = []
    var nspin = 1
    var nlocal: Int?
    var fermiEnergy: Double?
    var electrons: Double?

    static func parse(_ text: String, file: String) throws -> RunLog {
        var log = RunLog()
        var sawNspin = false
        func number(after marker: String, in line: Substring) -> Double? {
            guard let r = line.range(of: marker) else { return nil }
            return line[r.upperBound...].split(whereSeparator: { $0 == " " || $0 == "\t" }).first.flatMap { Double($0) }
        }
        for (k, line) in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).enumerated() {
            let t = line.trimmingCharacters(in: .whitespaces)
            if t.hasPrefix("READING ATOM TYPE") {
                log.types.append(AtomType(label: "", zetas: [], atomCount: 0))
            } else if t.hasPrefix("atom label ="), !log.types.isEmpty {
                log.types[log.types.count - 1].label = t.dropFirst("atom label =".count).trimmingCharacters(in: .whitespaces)
            } else if t.hasPrefix("L="), let comma = t.firstIndex(of: ","), !log.types.isEmpty {
                guard let l = Int(t[t.index(t.startIndex, offsetBy: 2) ..< comma]), l >= 0, l <= 6,
                      let n = number(after: "number of zeta =", in: line), n >= 0, n <= 64, n == n.rounded() else {
                    throw FormatError(file: file, field: "line \(k + 1): L=…, number of zeta", message: "cannot read '\(t)'")
                }
                var zetas = log.types[log.types.count - 1].zetas
                guard l == zetas.count else {
                    throw FormatError(file: file, field: "line \(k + 1): L=\(l)", message: "expected L=\(zetas.count) next")
                }
                zetas.append(Int(n))
                log.types[log.types.count - 1].zetas = zetas
            } else if t.hasPrefix("number of atom for this type ="), !log.types.isEmpty {
                // Bounded before Int(n): Double("1e300") and Double("nan") parse, and trap there.
                guard let n = number(after: "=", in: line), n >= 0, n <= Double(InputLimits.maxAtoms), n == n.rounded() else {
                    throw FormatError(file: file, field: "line \(k + 1): number of atom for this type", message: "not a count")
                }
                log.types[log.types.count - 1].atomCount = Int(n)
            } else if !sawNspin, t.hasPrefix("nspin ="), let n = number(after: "=", in: line) {
                guard [1, 2, 4].contains(n) else {
                    throw FormatError(file: file, field: "line \(k + 1): nspin", message: "\(n) is not 1, 2 or 4")
                }
                log.nspin = Int(n); sawNspin = true
            } else if t.hasPrefix("NLOCAL ="), log.nlocal == nil, let n = number(after: "=", in: line) {
                guard n >= 0, n <= Double(Int32.max), n == n.rounded() else {
                    throw FormatError(file: file, field: "line \(k + 1): NLOCAL", message: "'\(t)' is not an orbital count")
                }
                log.nlocal = Int(n)
            } else if t.hasPrefix("EFERMI ="), let e = number(after: "=", in: line) {
                log.fermiEnergy = e                    // printed in eV; the last one is the converged value
            } else if t.contains("number of electrons"), let r = t.range(of: "=", options: .backwards),
                      let n = Double(t[r.upperBound...].trimmingCharacters(in: .whitespaces)) {
                log.electrons = n
            }
        }
        guard !log.types.isEmpty else {
            throw FormatError(file: file, field: "READING ATOM TYPE", message: "no atom types found: not an ABACUS running_scf.log (or an unknown version)")
        }
        for t in log.types where t.label.isEmpty || t.zetas.isEmpty {
            throw FormatError(file: file, field: "READING ATOM TYPE", message: "atom type '\(t.label)' lists no 'atom label' or no 'L=…, number of zeta' lines")
        }
        return log
    }
}

// MARK: - STRU

struct STRU {
    struct Species { var label: String; var atomicNumber: Int; var positions: [Vec3] }
    /// Lattice vectors (rows) in Å.
    var lattice: [Vec3]
    var species: [Species]

    static func parse(_ text: String, file: String, input: String?) throws -> STRU {
        // Lines without comments ("#" or "//"), with their 1-based numbers.
        var lines: [(Int, [Substring])] = []
        for (k, raw) in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).enumerated() {
            var s = Substring(raw)
            if let h = s.firstIndex(of: "#") { s = s[..<h] }
            if let r = s.range(of: "//") { s = s[..<r.lowerBound] }
            let fields = s.split(whereSeparator: { $0 == " " || $0 == "\t" })
            if !fields.isEmpty { lines.append((k + 1, fields)) }
        }
        let sections: Set<String> = ["ATOMIC_SPECIES", "NUMERICAL_ORBITAL", "LATTICE_CONSTANT", "LATTICE_VECTORS",
                                     "LATTICE_PARAMETERS", "ATOMIC_POSITIONS", "NUMERICAL_DESCRIPTOR", "ABFS_ORBITAL",
                                     "PAW_FILES"]
        var body: [String: [(Int, [Substring])]] = [:]
        var current: String?
        for line in lines {
            let head = String(line.1[0])
            if sections.contains(head), line.1.count == 1 || head == "ATOMIC_POSITIONS" {
                current = head; body[head] = []
                if line.1.count > 1 { body[head]!.append((line.0, Array(line.1.dropFirst()))) }
            } else if let c = current {
                body[c]!.append(line)
            }
        }
        func double(_ f: Substring, _ line: Int, _ field: String) throws -> Double {
            guard let v = Double(f), v.isFinite else {
                throw FormatError(file: file, field: "line \(line): \(field)", message: "'\(f)' is not a finite number")
            }
            return v
        }
        guard let speciesLines = body["ATOMIC_SPECIES"], !speciesLines.isEmpty else {
            throw FormatError(file: file, field: "ATOMIC_SPECIES", message: "missing section")
        }
        let labels = speciesLines.map { String($0.1[0]) }
        guard let constLine = body["LATTICE_CONSTANT"]?.first else {
            throw FormatError(file: file, field: "LATTICE_CONSTANT", message: "missing section")
        }
        let lat0 = try double(constLine.1[0], constLine.0, "LATTICE_CONSTANT") * ABACUS.bohrToAngstrom
        guard lat0 > 0 else { throw FormatError(file: file, field: "line \(constLine.0): LATTICE_CONSTANT", message: "must be positive") }

        var vectors: [Vec3]
        if let v = body["LATTICE_VECTORS"] {
            guard v.count >= 3, v.prefix(3).allSatisfy({ $0.1.count >= 3 }) else {
                throw FormatError(file: file, field: "LATTICE_VECTORS", message: "expected three lines of three numbers")
            }
            vectors = try v.prefix(3).map { l in Vec3(try double(l.1[0], l.0, "LATTICE_VECTORS"), try double(l.1[1], l.0, "LATTICE_VECTORS"), try double(l.1[2], l.0, "LATTICE_VECTORS")) }
        } else {
            let latname = input.flatMap { STRU.inputValue("latname", in: $0) } ?? "none"
            let params = try (body["LATTICE_PARAMETERS"] ?? []).flatMap { l in try l.1.map { try double($0, l.0, "LATTICE_PARAMETERS") } }
            vectors = try STRU.latticeVectors(latname: latname, parameters: params, file: file)
        }
        vectors = vectors.map { $0 * lat0 }
        let volume = abs(dot(vectors[0], cross(vectors[1], vectors[2])))
        guard volume > 1e-8 else {
            throw FormatError(file: file, field: "LATTICE_VECTORS", message: "the lattice vectors are linearly dependent (cell volume \(volume) Å³)")
        }

        guard let posLines = body["ATOMIC_POSITIONS"], let modeLine = posLines.first else {
            throw FormatError(file: file, field: "ATOMIC_POSITIONS", message: "missing section")
        }
        let mode = String(modeLine.1[0])
        let lattice = Lattice(vectors: vectors)
        let toCartesian: (Vec3) -> Vec3
        switch mode {
        case "Direct": toCartesian = { lattice.cartesian($0) }
        case "Cartesian": toCartesian = { $0 * lat0 }
        case "Cartesian_angstrom": toCartesian = { $0 }
        case "Cartesian_au", "Cartesian_bohr": toCartesian = { $0 * ABACUS.bohrToAngstrom }
        default:
            throw FormatError(file: file, field: "line \(modeLine.0): ATOMIC_POSITIONS", message: "coordinate type '\(mode)' is not supported (Direct, Cartesian, Cartesian_angstrom, Cartesian_au are)")
        }
        var species: [Species] = []
        var k = 1
        while k < posLines.count {
            let (labelLine, labelFields) = posLines[k]
            let label = String(labelFields[0])
            guard labels.contains(label) else {
                throw FormatError(file: file, field: "line \(labelLine): ATOMIC_POSITIONS", message: "species '\(label)' is not listed in ATOMIC_SPECIES")
            }
            guard k + 2 < posLines.count, let count = Int(posLines[k + 2].1[0]), count >= 0 else {
                throw FormatError(file: file, field: "line \(labelLine): ATOMIC_POSITIONS \(label)", message: "expected the species label, its magnetization and its number of atoms on three lines")
            }
            guard k + 2 + count < posLines.count else {
                throw FormatError(file: file, field: "line \(posLines[k + 2].0): ATOMIC_POSITIONS \(label)", message: "\(count) atoms announced, fewer position lines follow")
            }
            var positions: [Vec3] = []
            for (ln, f) in posLines[(k + 3) ..< (k + 3 + count)] {
                guard f.count >= 3 else { throw FormatError(file: file, field: "line \(ln): ATOMIC_POSITIONS \(label)", message: "expected x y z") }
                positions.append(toCartesian(Vec3(try double(f[0], ln, "x"), try double(f[1], ln, "y"), try double(f[2], ln, "z"))))
            }
            guard let z = STRU.atomicNumber(label: label) else {
                throw FormatError(file: file, field: "line \(labelLine): ATOMIC_POSITIONS", message: "cannot tell the element of species '\(label)'")
            }
            species.append(Species(label: label, atomicNumber: z, positions: positions))
            k += 3 + count
        }
        guard !species.isEmpty else { throw FormatError(file: file, field: "ATOMIC_POSITIONS", message: "no atoms") }
        return STRU(lattice: vectors, species: species)
    }

    /// "Mo", "Fe1", "Fe_up" → the element symbol's atomic number.
    static func atomicNumber(label: String) -> Int? {
        let letters = label.prefix { $0.isLetter }
        for n in [2, 1] where letters.count >= n {
            let s = letters.prefix(n)
            if let z = Elements.atomicNumber(of: s.prefix(1).uppercased() + s.dropFirst().lowercased()) { return z }
        }
        return nil
    }

    static func inputValue(_ key: String, in input: String) -> String? {
        for line in input.split(whereSeparator: \.isNewline) {
            let f = line.split(separator: "#")[safe: 0]?.split(whereSeparator: { $0 == " " || $0 == "\t" }) ?? []
            if f.count >= 2, f[0].lowercased() == key { return String(f[1]) }
        }
        return nil
    }

    /// ABACUS's `latname` cells (source/module_cell/unitcell.cpp), in units of the lattice constant.
    static func latticeVectors(latname: String, parameters p: [Double], file: String) throws -> [Vec3] {
        switch latname {
        case "sc": return [Vec3(1, 0, 0), Vec3(0, 1, 0), Vec3(0, 0, 1)]
        case "fcc": return [Vec3(-0.5, 0, 0.5), Vec3(0, 0.5, 0.5), Vec3(-0.5, 0.5, 0)]
        case "bcc": return [Vec3(0.5, 0.5, 0.5), Vec3(-0.5, 0.5, 0.5), Vec3(-0.5, -0.5, 0.5)]
        case "hexagonal":
            guard let c = p.first, c > 0 else {
                throw FormatError(file: file, field: "LATTICE_PARAMETERS", message: "latname hexagonal needs c/a")
            }
            return [Vec3(1, 0, 0), Vec3(-0.5, 3.0.squareRoot() / 2, 0), Vec3(0, 0, c)]
        case "none":
            throw FormatError(file: file, field: "LATTICE_VECTORS", message: "missing section (and INPUT sets no latname)")
        default:
            throw FormatError(file: file, field: "LATTICE_VECTORS", message: "latname '\(latname)' is not supported without LATTICE_VECTORS (sc, fcc, bcc, hexagonal are)")
        }
    }
}

private extension Array {
    subscript(safe i: Int) -> Element? { indices.contains(i) ? self[i] : nil }
}

// MARK: - CSR text

enum CSRText {
    /// Whitespace-separated tokens with their line numbers, scanned over the UTF-8 bytes (the
    /// files run to megabytes); lines whose first non-blank character is "#" are skipped.
    struct Tokens {
        let bytes: [UInt8]
        var pos = 0
        /// 1-based line of `pos`.
        var line = 1
        /// 1-based line of the last token read.
        private(set) var lineNumber = 0
        let file: String

        init(_ text: String, file: String, from firstLine: Int) {
            bytes = Array(text.utf8)
            self.file = file
            // Skip to the start of 0-based line `firstLine`.
            while line <= firstLine, pos < bytes.count {
                if bytes[pos] == 10 { line += 1 }
                pos += 1
            }
        }

        static func isBlank(_ b: UInt8) -> Bool { b == 32 || b == 9 || b == 13 }

        /// Moves to the next token's first byte; false at the end of the file.
        mutating func skip() -> Bool {
            var lineStart = pos == 0 || bytes[pos - 1] == 10
            while pos < bytes.count {
                let b = bytes[pos]
                if b == 10 { line += 1; pos += 1; lineStart = true; continue }
                if Tokens.isBlank(b) { pos += 1; continue }
                if b == 35, lineStart || Tokens.onlyBlanksBefore(bytes, pos) {     // "#": comment line
                    while pos < bytes.count, bytes[pos] != 10 { pos += 1 }
                    continue
                }
                return true
            }
            return false
        }

        static func onlyBlanksBefore(_ bytes: [UInt8], _ p: Int) -> Bool {
            var q = p - 1
            while q >= 0, bytes[q] != 10 { if !isBlank(bytes[q]) { return false }; q -= 1 }
            return true
        }

        mutating func token(_ what: @autoclosure () -> String) throws -> Range<Int> {
            guard skip() else {
                throw FormatError(file: file, field: "line \(line): \(what())", message: "file ends here (truncated?)")
            }
            let start = pos
            while pos < bytes.count, bytes[pos] != 10, !Tokens.isBlank(bytes[pos]) { pos += 1 }
            lineNumber = line
            return start ..< pos
        }

        func text(_ r: Range<Int>) -> String { String(decoding: bytes[r], as: UTF8.self) }

        /// " (the file ends here: truncated?)" when the token just read was the file's last.
        var endNote: String {
            bytes[pos...].allSatisfy { Tokens.isBlank($0) || $0 == 10 } ? " (the file ends here: truncated?)" : ""
        }

        mutating func int(_ what: @autoclosure () -> String) throws -> Int {
            let r = try token(what())
            var i = r.lowerBound, negative = false
            if bytes[i] == 45 || bytes[i] == 43 { negative = bytes[i] == 45; i += 1 }
            var v = 0
            var ok = i < r.upperBound && r.upperBound - i <= 18          // no overflow

            while ok, i < r.upperBound {
                let d = Int(bytes[i]) - 48
                if d < 0 || d > 9 { ok = false; break }
                v = v * 10 + d
                i += 1
            }
            guard ok else { throw FormatError(file: file, field: "line \(lineNumber): \(what())", message: "'\(text(r))' is not an integer\(endNote)") }
            return negative ? -v : v
        }

        mutating func double(_ what: @autoclosure () -> String) throws -> Double {
            let r = try token(what())
            let v: Double? = r.count < 64 ? bytes.withUnsafeBufferPointer { buf -> Double? in
                var tmp = [CChar](repeating: 0, count: r.count + 1)
                for (k, b) in buf[r].enumerated() { tmp[k] = CChar(bitPattern: b) }
                return tmp.withUnsafeBufferPointer { t -> Double? in
                    var end: UnsafeMutablePointer<CChar>?
                    let x = strtod(t.baseAddress!, &end)
                    return end == UnsafeMutablePointer(mutating: t.baseAddress! + r.count) ? x : nil
                }
            } : nil
            guard let v, v.isFinite else {
                if bytes[r.lowerBound] == 40 {          // "("
                    throw FormatError(file: file, field: "line \(lineNumber): \(what())", message: "complex value '\(text(r))': noncollinear or spin–orbit (nspin = 4) matrices are not yet supported")
                }
                throw FormatError(file: file, field: "line \(lineNumber): \(what())", message: "'\(text(r))' is not a finite number\(endNote)")
            }
            return v
        }

        /// Whether the next non-blank line is a comment ("# CSR values" in the newer layout).
        func nextIsComment() -> Bool {
            var p = pos
            while p < bytes.count, Tokens.isBlank(bytes[p]) || bytes[p] == 10 { p += 1 }
            return p < bytes.count && bytes[p] == 35
        }

        /// Whether anything but blanks and comment lines remains.
        mutating func atEnd() -> Bool { !skip() }

        /// The rest of the current line (after `atEnd()` returned false).
        func peekLine() -> String {
            var e = pos
            while e < bytes.count, bytes[e] != 10 { e += 1 }
            return text(pos ..< e)
        }
    }

    /// Header facts of either version.
    struct Header { var dimension: Int; var rCount: Int; var firstDataLine: Int; var newStyle: Bool }

    static func header(_ text: String, file: String) throws -> Header {
        let lines = text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline)
        guard let first = lines.firstIndex(where: { !$0.allSatisfy(\.isWhitespace) }) else {
            throw FormatError(file: file, message: "empty file")
        }
        let head = lines[first].trimmingCharacters(in: .whitespaces)
        if head.hasPrefix("STEP:") || head.hasPrefix("IONIC_STEP:") {
            func value(_ k: Int, _ label: String) throws -> Int {
                guard k < lines.count, lines[k].contains(label) else {
                    throw FormatError(file: file, field: "line \(k + 1): \(label)", message: "missing (found '\(k < lines.count ? String(lines[k].prefix(60)) : "end of file")')")
                }
                guard let colon = lines[k].lastIndex(of: ":"), let v = Int(lines[k][lines[k].index(after: colon)...].trimmingCharacters(in: .whitespaces)), v >= 0 else {
                    throw FormatError(file: file, field: "line \(k + 1): \(label)", message: "not a count: '\(lines[k])'")
                }
                return v
            }
            let n = try value(first + 1, "Matrix Dimension")
            let m = try value(first + 2, "Matrix number")
            return Header(dimension: n, rCount: m, firstDataLine: first + 3, newStyle: false)
        }
        if head.hasPrefix("--- Ionic Step") {
            var n: Int?, m: Int?, nspin: Int?
            var csrStart: Int?
            for k in (first + 1) ..< lines.count {
                let l = lines[k]
                func count() throws -> Int {
                    guard let v = l.split(separator: "#")[0].split(separator: " ").first.flatMap({ Int($0) }), v >= 0 else {
                        throw FormatError(file: file, field: "line \(k + 1)", message: "not a count: '\(l)'")
                    }
                    return v
                }
                if l.contains("# number of localized basis") { n = try count() }
                else if l.contains("# number of Bravais lattice vector R") { m = try count() }
                else if l.contains("# number of spin directions") { nspin = try count() }
                else if l.contains("CSR Format") { csrStart = k; break }
                else if l.contains("--- Ionic Step") { break }
            }
            if nspin == 4 {
                throw FormatError(file: file, field: "number of spin directions", message: "nspin = 4 (noncollinear or spin–orbit) is not yet supported")
            }
            guard let n else { throw FormatError(file: file, field: "number of localized basis", message: "missing header line ('N # number of localized basis'): the matrix dimension is unknown") }
            guard let m else { throw FormatError(file: file, field: "number of Bravais lattice vector R", message: "missing header line") }
            guard let csrStart else { throw FormatError(file: file, field: "CSR Format", message: "no '# CSR Format' comment before the matrices") }
            return Header(dimension: n, rCount: m, firstDataLine: csrStart + 1, newStyle: true)
        }
        throw FormatError(file: file, field: "line \(first + 1)", message: "unknown header '\(head.prefix(60))': expected 'STEP: n' (ABACUS ≤ 3.9.0) or ' --- Ionic Step n ---' (newer ABACUS)")
    }

    /// Parses one H(R) or S(R) file into blocks in internal order, values × `scale`.
    static func parse(_ text: String, file: String, layout: OrbitalLayout, scale: Double) throws -> BlockOperator {
        let h = try header(text, file: file)
        guard h.dimension == layout.total else {
            throw FormatError(file: file, field: "Matrix Dimension", message: "\(h.dimension) orbitals, but STRU and running_scf.log give \(layout.total)")
        }
        var tokens = Tokens(text, file: file, from: h.firstDataLine)
        let n = h.dimension
        var op = BlockOperator()
        var seen = Set<LatticeShift>()
        for _ in 0 ..< h.rCount {
            let r = LatticeShift(try tokens.int("Rx"), try tokens.int("Ry"), try tokens.int("Rz"))
            let rLine = tokens.lineNumber
            let nnz = try tokens.int("number of nonzeros")
            guard nnz >= 0, nnz <= n * n else {
                throw FormatError(file: file, field: "line \(rLine): R = (\(r.x), \(r.y), \(r.z))", message: "\(nnz) nonzeros in a \(n)×\(n) matrix")
            }
            guard seen.insert(r).inserted else {
                throw FormatError(file: file, field: "line \(rLine): R = (\(r.x), \(r.y), \(r.z))", message: "R listed twice")
            }
            // Empty R: the ≤ 3.9.0 layout writes nothing more; the newer one writes the three
            // markers and n + 1 zero row pointers (some intermediate versions wrote nothing).
            if nnz == 0 && !(h.newStyle && tokens.nextIsComment()) { continue }
            var values = [Double](), columns = [Int]()
            // Each entry takes at least two bytes of text: a lying count cannot reserve more.
            values.reserveCapacity(min(nnz, tokens.bytes.count / 2)); columns.reserveCapacity(min(nnz, tokens.bytes.count / 2))
            for _ in 0 ..< nnz { values.append(try tokens.double("CSR values of R = (\(r.x), \(r.y), \(r.z))") * scale) }
            for _ in 0 ..< nnz {
                let c = try tokens.int("CSR column indices of R = (\(r.x), \(r.y), \(r.z))")
                guard c >= 0, c < n else {
                    throw FormatError(file: file, field: "line \(tokens.lineNumber): column indices of R = (\(r.x), \(r.y), \(r.z))", message: "column \(c) out of range 0..<\(n)")
                }
                columns.append(c)
            }
            var pointers = [Int]()
            pointers.reserveCapacity(n + 1)
            for k in 0 ... n {
                let p = try tokens.int("CSR row pointers of R = (\(r.x), \(r.y), \(r.z))")
                guard p >= (pointers.last ?? 0), p <= nnz, k > 0 || p == 0 else {
                    throw FormatError(file: file, field: "line \(tokens.lineNumber): row pointers of R = (\(r.x), \(r.y), \(r.z))", message: "pointer \(k) = \(p) breaks 0 = p₀ ≤ p₁ ≤ … ≤ nnz = \(nnz)")
                }
                pointers.append(p)
            }
            guard pointers[n] == nnz else {
                throw FormatError(file: file, field: "line \(tokens.lineNumber): row pointers of R = (\(r.x), \(r.y), \(r.z))", message: "last pointer \(pointers[n]) ≠ number of nonzeros \(nnz)")
            }
            // Gather the entries per atom pair, in ABACUS order within the atoms.
            var blocks: [SIMD2<Int>: [Double]] = [:]
            for row in 0 ..< n where pointers[row] < pointers[row + 1] {
                let a = layout.atomOfOrbital[row], ra = row - layout.offsets[a]
                for e in pointers[row] ..< pointers[row + 1] {
                    let col = columns[e]
                    let b = layout.atomOfOrbital[col], cb = col - layout.offsets[b]
                    let key = SIMD2(a, b)
                    if blocks[key] == nil { blocks[key] = [Double](repeating: 0, count: layout.counts[a] * layout.counts[b]) }
                    blocks[key]![ra * layout.counts[b] + cb] = values[e]
                }
            }
            for key in blocks.keys.sorted(by: { ($0.x, $0.y) < ($1.x, $1.y) }) {
                let a = key.x, b = key.y
                let raw = blocks[key]!, nb = layout.counts[b]
                var block = [Double](repeating: 0, count: raw.count)
                for (r, (ri, rs)) in zip(layout.index[a], layout.sign[a]).enumerated() {
                    for (c, (ci, cs)) in zip(layout.index[b], layout.sign[b]).enumerated() {
                        block[r * nb + c] = rs * cs * raw[ri * nb + ci]
                    }
                }
                op.append(BlockKey(shift: r, i: a, j: b), rows: layout.counts[a], cols: nb, values: block)
            }
        }
        if !tokens.atEnd() {
            let l = String(tokens.peekLine().prefix(40))
            if l.contains("STEP") || l.contains("Ionic Step") {
                throw FormatError(file: file, field: "line \(tokens.line)", message: "a second ionic step: only single-point (one-step) output is read")
            }
            throw FormatError(file: file, field: "line \(tokens.line)", message: "unexpected data after the \(h.rCount) R matrices the header announces ('\(l)')")
        }
        return op.sorted()
    }
}
