// DeepH-dock structure folders: POSCAR (atoms grouped by element), info.json, hamiltonian.h5 and
// overlap.h5 (atom_pairs N×5 [R1, R2, R3, i, j] 0-based, chunk_boundaries N+1, chunk_shapes N×2,
// flat row-major entries, Float64 or Float32, possibly compressed). Orbitals are already in the
// internal m = −l…l order, so blocks pass through unpermuted.
import Foundation
import HDF5Kit
import StageAPI
import Structures

public enum DeepHDock {
    public static let poscarFile = "POSCAR"
    public static let infoFile = "info.json"
    public static let hamiltonianFile = "hamiltonian.h5"
    public static let overlapFile = "overlap.h5"
    /// The info.json keys DFTRecord's fields hold, in the order DeepH-dock writes them; any other
    /// key (`occupation`, `homo_eV`, …) is carried as `DFTRecord.extraInfo` and written after these.
    public static let modelledInfoKeys = ["atoms_quantity", "orbits_quantity", "orthogonal_basis", "spinful",
                                          "fermi_energy_eV", "elements_orbital_map"]

    /// The atom order DeepH-dock requires: grouped by element in order of first appearance, stable
    /// within an element. `order[k]` is the index (in `structure`) of the atom written k-th.
    /// DeepH-dock's own legacy → dock converter uses the same rule.
    public static func atomOrder(for structure: Structure) -> [Int] {
        var order: [Int] = []
        order.reserveCapacity(structure.atomCount)
        for z in structure.species {
            for (i, zi) in structure.atomicNumbers.enumerated() where zi == z { order.append(i) }
        }
        return order
    }

    // MARK: Reading

    static func read(_ files: StructureFiles, name: String) throws -> DFTRecord {
        let poscar = try POSCAR.parse(try files.text(poscarFile), file: files.displayPath(poscarFile))
        try InputLimits.checkLattice(poscar.lattice, file: files.displayPath(poscarFile), field: "lines 2-5 (scale and lattice vectors)")
        let info = try JSONFields(data: try files.data(infoFile), file: files.displayPath(infoFile))

        if try info.bool("spinful") == true {
            throw FormatError(file: info.file, field: "spinful", message: "spinful (2-component) data is not supported")
        }
        guard let orbitalMap = try info.object("elements_orbital_map") else {
            throw FormatError(file: info.file, field: "elements_orbital_map", message: "missing (the l of each shell, per element)")
        }
        var basis: [Int: OrbitalShells] = [:]
        for (symbol, value) in orbitalMap {
            let field = "elements_orbital_map.\(symbol)"
            guard let z = Elements.atomicNumber(of: symbol) else {
                throw FormatError(file: info.file, field: field, message: "unknown element '\(symbol)'")
            }
            let items = value.arrayValue ?? []
            try InputLimits.check(items.count, atMost: InputLimits.maxShellsPerSpecies, "shells", file: info.file, field: field)
            let ls = items.compactMap { item -> Int? in
                guard let d = item.doubleValue, d == d.rounded(), (0 ... 6).contains(d) else { return nil }
                return Int(d)
            }
            guard value.arrayValue != nil, ls.count == items.count else {
                throw FormatError(file: info.file, field: field, message: "expected a list of angular momenta 0…6, found \(value.pythonStyleString)")
            }
            basis[z] = OrbitalShells(ls)
        }
        for z in Set(poscar.atomicNumbers) where basis[z] == nil {
            throw FormatError(file: info.file, field: "elements_orbital_map", message: "no shells for \(Elements.symbol(of: z)!), which the POSCAR lists")
        }
        var structure = Structure(lattice: poscar.lattice, atomicNumbers: poscar.atomicNumbers,
                                  positions: poscar.positions, basis: basis)
        if let n = try info.int("atoms_quantity"), n != structure.atomCount {
            throw FormatError(file: info.file, field: "atoms_quantity", message: "\(n), but the POSCAR lists \(structure.atomCount) atoms")
        }
        if let n = try info.int("orbits_quantity"), n != structure.totalOrbitals {
            throw FormatError(file: info.file, field: "orbits_quantity", message: "\(n), but elements_orbital_map gives \(structure.totalOrbitals) orbitals for this POSCAR")
        }

        let hamiltonian = try files.contains(hamiltonianFile)
            ? readOperator(try files.hdf5(hamiltonianFile), structure: structure) : nil
        let overlap = try files.contains(overlapFile)
            ? readOperator(try files.hdf5(overlapFile), structure: structure) : nil
        structure.lattice.periodic = inferPeriodicity([hamiltonian, overlap])
        try InputLimits.checkAtomDistances(structure, file: files.displayPath(poscarFile), field: "positions")

        return DFTRecord(name: name, structure: structure, hamiltonian: hamiltonian, overlap: overlap,
                         fermiEnergy: try info.double("fermi_energy_eV"),
                         spinful: false,
                         orthogonalBasis: try info.bool("orthogonal_basis") ?? false,
                         extraInfo: try info.extras(excluding: modelledInfoKeys))
    }

    static func readOperator(_ file: HDF5File, structure: Structure) throws -> BlockOperator {
        try mappingHDF5Errors {
            let path = file.path
            let pairs = try file.readInt64s("atom_pairs")
            let count = pairs.shape.first ?? 0
            guard pairs.shape.count == 2, pairs.shape[1] == 5 else {
                throw FormatError(file: path, field: "atom_pairs", message: "expected shape (N, 5), found \(pairs.shape)")
            }
            try InputLimits.check(count, atMost: InputLimits.maxBlocks, "blocks", file: path, field: "atom_pairs")
            let bounds = try file.readInt64s("chunk_boundaries")
            guard bounds.shape == [count + 1] else {
                throw FormatError(file: path, field: "chunk_boundaries", message: "expected shape (\(count + 1),), found \(bounds.shape)")
            }
            let shapes = try file.readInt64s("chunk_shapes")
            guard shapes.shape == [count, 2] else {
                throw FormatError(file: path, field: "chunk_shapes", message: "expected shape (\(count), 2), found \(shapes.shape)")
            }
            // Integer entries are a wrong file (a Hamiltonian is never integral), not data to convert.
            let kind = try file.datasetInfo("entries").kind
            guard kind == .float64 || kind == .float32 else {
                throw FormatError(file: path, field: "entries", message: "stored as \(kind) integers; expected floating point (float64 or float32)")
            }
            let entries = try file.readDoubles("entries")
            guard entries.shape.count == 1 else {
                throw FormatError(file: path, field: "entries", message: "expected a flat array, found shape \(entries.shape)")
            }
            guard bounds.values.first == 0, Int(bounds.values.last ?? -1) == entries.values.count else {
                throw FormatError(file: path, field: "chunk_boundaries", message: "must run from 0 to the length of entries (\(entries.values.count)), found \(bounds.values.first ?? -1)…\(bounds.values.last ?? -1)")
            }
            let counts = structure.orbitalCounts
            var op = BlockOperator()
            for b in 0 ..< count {
                let p = pairs.values[5 * b ..< 5 * b + 5].map { Int($0) }
                // |R| bounded so that every later R arithmetic (negation, k·R) is exact.
                guard p[0 ..< 3].allSatisfy({ (-maxShift ... maxShift).contains($0) }) else {
                    throw FormatError(file: path, field: "atom_pairs[\(b)]", message: "lattice shift \(Array(p[0 ..< 3])) out of range ±\(maxShift)")
                }
                let key = BlockKey(p[0], p[1], p[2], p[3], p[4])
                for atom in [key.i, key.j] where !(0 ..< structure.atomCount).contains(atom) {
                    throw FormatError(file: path, field: "atom_pairs[\(b)] = \(key)", message: "atom index \(atom) out of range 0..<\(structure.atomCount) (0-based)")
                }
                guard !op.contains(key) else {
                    throw FormatError(file: path, field: "atom_pairs[\(b)] = \(key)", message: "duplicate block")
                }
                let rows = Int(shapes.values[2 * b]), cols = Int(shapes.values[2 * b + 1])
                guard rows == counts[key.i], cols == counts[key.j] else {
                    throw FormatError(file: path, field: "chunk_shapes[\(b)] (block \(key))", message: "shape (\(rows), \(cols)) inconsistent with the orbitals of atoms \(key.i) and \(key.j): expected (\(counts[key.i]), \(counts[key.j]))")
                }
                let start = Int(bounds.values[b]), end = Int(bounds.values[b + 1])
                guard 0 <= start, start <= end, end <= entries.values.count, end - start == rows * cols else {
                    throw FormatError(file: path, field: "chunk_boundaries[\(b)] (block \(key))", message: "range \(start)..<\(end) does not hold a \(rows)×\(cols) block")
                }
                let values = entries.values[start ..< end]
                if let bad = values.firstIndex(where: { !$0.isFinite }) {
                    throw FormatError(file: path, field: "entries[\(bad)] (block \(key))", message: "non-finite value \(entries.values[bad])")
                }
                op.append(key, rows: rows, cols: cols, values: values)
            }
            return op
        }
    }

    // MARK: Writing

    static func write(_ original: DFTRecord, to dir: URL) throws {
        let order = atomOrder(for: original.structure)
        let record = order == Array(order.indices) ? original : original.permutingAtoms(order)
        let s = record.structure
        try POSCAR.text(lattice: s.lattice, atomicNumbers: s.atomicNumbers, positions: s.positions,
                        comment: "POSCAR written by HarmoSE")
            .write(to: dir.appendingPathComponent(poscarFile), atomically: false, encoding: .utf8)

        let orbitalMap: [(String, JSONValue)] = s.species.map { z in
            (Elements.symbol(of: z)!, .array(s.basis[z]!.ls.map { .int($0) }))
        }
        let infoURL = dir.appendingPathComponent(infoFile)
        let modelled: [(String, JSONValue)] = [
            ("atoms_quantity", .int(s.atomCount)),
            ("orbits_quantity", .int(s.totalOrbitals)),
            ("orthogonal_basis", .bool(record.orthogonalBasis)),
            ("spinful", .bool(record.spinful)),
            ("fermi_energy_eV", record.fermiEnergy.map { .double($0) } ?? .null),
            ("elements_orbital_map", .object(orbitalMap)),
        ]
        assert(modelled.map(\.0) == modelledInfoKeys)
        try JSONFields.infoText(modelled, extras: record.extraInfo, file: infoURL.path)
            .write(to: infoURL, atomically: false, encoding: .utf8)

        if let h = record.hamiltonian { try writeOperator(h, to: dir.appendingPathComponent(hamiltonianFile)) }
        if let o = record.overlap { try writeOperator(o, to: dir.appendingPathComponent(overlapFile)) }
    }

    public static func writeOperator(_ op: BlockOperator, to url: URL) throws {
        let n = op.blockCount
        var pairs: [Int64] = []
        pairs.reserveCapacity(5 * n)
        var shapes: [Int64] = []
        shapes.reserveCapacity(2 * n)
        var bounds: [Int64] = [0]
        bounds.reserveCapacity(n + 1)
        for (b, key) in op.keys.enumerated() {
            pairs += [key.shift.x, key.shift.y, key.shift.z, key.i, key.j].map { Int64($0) }
            let shape = op.shape(at: b)
            shapes += [Int64(shape.x), Int64(shape.y)]
            bounds.append(Int64(op.offsets[b + 1]))
        }
        let file = try HDF5File(creatingAt: url.path)
        try file.write("atom_pairs", int64s: pairs, shape: [n, 5])
        try file.write("chunk_boundaries", int64s: bounds, shape: [n + 1])
        try file.write("chunk_shapes", int64s: shapes, shape: [n, 2])
        try file.write("entries", doubles: op.entries, shape: [op.entries.count])
        try file.flush()
    }
}

/// Largest |R| component accepted in a block key (real neighbour shells reach a few cells).
let maxShift = 1 << 20

/// A lattice direction is periodic when some block couples a cell to its image along it.
func inferPeriodicity(_ operators: [BlockOperator?]) -> [Bool] {
    var periodic = [false, false, false]
    var anyBlocks = false
    for op in operators.compactMap({ $0 }) {
        for key in op.keys {
            anyBlocks = true
            if key.shift.x != 0 { periodic[0] = true }
            if key.shift.y != 0 { periodic[1] = true }
            if key.shift.z != 0 { periodic[2] = true }
        }
    }
    return anyBlocks ? periodic : [true, true, true]
}

/// VASP 5 POSCAR: comment, scale, three lattice rows, element symbols, counts, optional
/// "Selective dynamics", Cartesian/Direct, one position per line.
enum POSCAR {
    struct Parsed {
        var lattice: Lattice
        var atomicNumbers: [Int]
        var positions: [Vec3]
    }

    static func parse(_ text: String, file: String) throws -> Parsed {
        let lines = text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).map(String.init)
        func line(_ k: Int, _ what: String) throws -> [Substring] {
            guard k < lines.count else { throw FormatError(file: file, field: "line \(k + 1)", message: "missing (\(what)); the file ends early") }
            return lines[k].split(whereSeparator: { $0 == " " || $0 == "\t" })
        }
        func doubles(_ k: Int, _ what: String, count: Int) throws -> [Double] {
            let fields = try line(k, what)
            guard fields.count >= count else {
                throw FormatError(file: file, field: "line \(k + 1)", message: "expected \(count) numbers (\(what)), found '\(lines[k])'")
            }
            return try fields.prefix(count).map { f in
                guard let v = Double(f), v.isFinite else {
                    throw FormatError(file: file, field: "line \(k + 1)", message: "'\(f)' is not a finite number (\(what))")
                }
                return v
            }
        }
        let scaleFields = try line(1, "scale factor")
        guard !scaleFields.isEmpty else {
            throw FormatError(file: file, field: "line 2", message: "missing scale factor (the line is empty)")
        }
        let scales = try scaleFields.prefix(scaleFields.count >= 3 && Double(scaleFields[2]) != nil ? 3 : 1).map { f -> Double in
            guard let v = Double(f), v.isFinite, v != 0 else {
                throw FormatError(file: file, field: "line 2", message: "'\(f)' is not a valid scale factor")
            }
            return v
        }
        var vectors = try (2 ... 4).map { k -> Vec3 in
            let v = try doubles(k, "lattice vector a\(k - 1)", count: 3)
            return Vec3(v[0], v[1], v[2])
        }
        var scaleVector = Vec3(repeating: scales[0])
        if scales.count == 3 {
            scaleVector = Vec3(scales[0], scales[1], scales[2])
        } else if scales[0] < 0 {
            // VASP: a negative scale is the target cell volume.
            let vol = abs(dot(vectors[0], cross(vectors[1], vectors[2])))
            scaleVector = Vec3(repeating: Foundation.pow(-scales[0] / vol, 1.0 / 3.0))
        }
        vectors = vectors.map { $0 * scaleVector }

        let symbols = try line(5, "element symbols")
        guard let first = symbols.first, first.first?.isLetter == true else {
            throw FormatError(file: file, field: "line 6", message: "expected element symbols (VASP 5 POSCAR), found '\(lines[5])'")
        }
        let countFields = try line(6, "atom counts")
        guard countFields.count == symbols.count else {
            throw FormatError(file: file, field: "line 7", message: "\(countFields.count) counts for \(symbols.count) element symbols")
        }
        var atomicNumbers: [Int] = []
        for (symbol, countText) in zip(symbols, countFields) {
            // VASP allows "Mo_pv"-style potential names; the element is the part before "_" or "/".
            let bare = String(symbol.split(whereSeparator: { $0 == "_" || $0 == "/" }).first ?? symbol)
            guard let z = Elements.atomicNumber(of: bare) else {
                throw FormatError(file: file, field: "line 6", message: "unknown element '\(symbol)'")
            }
            guard let n = Int(countText), n >= 0 else {
                throw FormatError(file: file, field: "line 7", message: "'\(countText)' is not an atom count")
            }
            try InputLimits.check(atomicNumbers.count + min(n, InputLimits.maxAtoms + 1), atMost: InputLimits.maxAtoms, "atoms", file: file, field: "line 7")
            atomicNumbers += Array(repeating: z, count: n)
        }
        var k = 7
        var mode = try line(k, "coordinate mode").first.map(String.init) ?? ""
        if mode.lowercased().hasPrefix("s") {
            k += 1
            mode = try line(k, "coordinate mode").first.map(String.init) ?? ""
        }
        let cartesian = mode.lowercased().hasPrefix("c") || mode.lowercased().hasPrefix("k")
        guard cartesian || mode.lowercased().hasPrefix("d") else {
            throw FormatError(file: file, field: "line \(k + 1)", message: "expected 'Cartesian' or 'Direct', found '\(mode)'")
        }
        let lattice = Lattice(vectors: vectors)
        var positions: [Vec3] = []
        positions.reserveCapacity(atomicNumbers.count)
        for a in 0 ..< atomicNumbers.count {
            let v = try doubles(k + 1 + a, "position of atom \(a)", count: 3)
            let p = Vec3(v[0], v[1], v[2])
            positions.append(cartesian ? p * scaleVector : lattice.cartesian(p))
        }
        return Parsed(lattice: lattice, atomicNumbers: atomicNumbers, positions: positions)
    }

    /// POSCAR text in Cartesian coordinates; `atomicNumbers` must already be grouped by element.
    static func text(lattice: Lattice, atomicNumbers: [Int], positions: [Vec3], comment: String) -> String {
        var groups: [(Int, Int)] = []
        for z in atomicNumbers {
            if let last = groups.last, last.0 == z { groups[groups.count - 1].1 += 1 } else { groups.append((z, 1)) }
        }
        var out = "\(comment)\n1.0\n"
        for v in lattice.vectors { out += "  \(v.x)  \(v.y)  \(v.z)\n" }
        out += groups.map { Elements.symbol(of: $0.0)! }.joined(separator: " ") + "\n"
        out += groups.map { String($0.1) }.joined(separator: " ") + "\n"
        out += "Cartesian\n"
        for p in positions { out += "    \(p.x)  \(p.y)  \(p.z)\n" }
        return out
    }
}
