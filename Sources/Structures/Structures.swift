// Structures: the one internal representation of a DFT sample that every other module speaks.
// Owns units (eV, Å), the periodic table, per-species orbital shells, the internal orbital order,
// and block-sparse real-space operators H(R) and S(R). File formats convert to and from this at
// their edges (see Formats); nothing here knows about files.
//
// Internal conventions, defined once:
// - Lengths in Å, energies in eV.
// - Lattice vectors are the rows of `Lattice.vectors` (a1, a2, a3).
// - Atoms are 0-based; an operator block (R, i, j) is ⟨i, 0| O |j, R⟩ with shape (n_i, n_j),
//   where R is an integer lattice translation.
// - Within a shell of angular momentum l, orbitals are real spherical harmonics ordered
//   m = −l…l without Condon–Shortley phase: p = (y, z, x); d = (xy, yz, 3z²−r², xz, x²−y²);
//   f = (m = −3…3). This is the DeepH-dock convention.
// - Bloch sums: O(k) = Σ_R e^{i2π k·R} O(R), k in fractional reciprocal coordinates.

/// A 3-vector of doubles, used for positions and lattice vectors.
public typealias Vec3 = SIMD3<Double>

/// An integer lattice translation in units of the lattice vectors.
public typealias LatticeShift = SIMD3<Int>

public enum Units {
    public static let hartreeToEV = 27.211386245988
    public static let rydbergToEV = 13.605693122994
    public static let bohrToAngstrom = 0.529177210903
}

/// Lattice vectors as rows: `vectors[0]` = a1, etc. Non-periodic directions still carry a vector
/// (the vacuum box), and `periodic` says which directions repeat.
public struct Lattice: Equatable, Sendable {
    public var vectors: [Vec3]
    public var periodic: [Bool]

    public init(vectors: [Vec3], periodic: [Bool] = [true, true, true]) {
        precondition(vectors.count == 3 && periodic.count == 3, "a lattice has three vectors")
        self.vectors = vectors
        self.periodic = periodic
    }

    public var volume: Double {
        let a = vectors[0], b = vectors[1], c = vectors[2]
        return abs(dot(a, cross(b, c)))
    }

    /// Reciprocal vectors as rows, with the 2π factor: b_i · a_j = 2π δ_ij.
    public var reciprocalVectors: [Vec3] {
        let a = vectors[0], b = vectors[1], c = vectors[2]
        let v = dot(a, cross(b, c))
        let f = 2 * Double.pi / v
        return [cross(b, c) * f, cross(c, a) * f, cross(a, b) * f]
    }

    /// Cartesian position of fractional coordinates `f`.
    public func cartesian(_ f: Vec3) -> Vec3 {
        vectors[0] * f.x + vectors[1] * f.y + vectors[2] * f.z
    }

    /// Fractional coordinates of a Cartesian position.
    public func fractional(_ r: Vec3) -> Vec3 {
        let b = reciprocalVectors
        return Vec3(dot(b[0], r), dot(b[1], r), dot(b[2], r)) / (2 * Double.pi)
    }

    /// Cartesian translation of the integer shift `R`.
    public func translation(_ shift: LatticeShift) -> Vec3 {
        cartesian(Vec3(Double(shift.x), Double(shift.y), Double(shift.z)))
    }
}

@inlinable public func dot(_ a: Vec3, _ b: Vec3) -> Double { (a * b).sum() }
@inlinable public func cross(_ a: Vec3, _ b: Vec3) -> Vec3 {
    Vec3(a.y * b.z - a.z * b.y, a.z * b.x - a.x * b.z, a.x * b.y - a.y * b.x)
}
@inlinable public func norm(_ a: Vec3) -> Double { dot(a, a).squareRoot() }

/// The orbital shells of one species: the angular momentum l of each radial shell, in the order
/// the orbitals are stored. Orbitals within a shell follow the internal m = −l…l order.
public struct OrbitalShells: Hashable, Sendable, CustomStringConvertible {
    public var ls: [Int]
    public init(_ ls: [Int]) { self.ls = ls }
    public var orbitalCount: Int { ls.reduce(0) { $0 + 2 * $1 + 1 } }
    /// Offset of each shell's first orbital within the atom's orbitals.
    public var shellOffsets: [Int] {
        var offsets: [Int] = []
        var o = 0
        for l in ls { offsets.append(o); o += 2 * l + 1 }
        return offsets
    }
    public var description: String { ls.map(String.init).joined(separator: " ") }
}

/// One atomic configuration with its orbital basis.
public struct Structure: Equatable, Sendable {
    public var lattice: Lattice
    /// Atomic numbers, one per atom.
    public var atomicNumbers: [Int]
    /// Cartesian positions in Å.
    public var positions: [Vec3]
    /// Orbital shells per atomic number. Every species present must have an entry.
    public var basis: [Int: OrbitalShells]

    public init(lattice: Lattice, atomicNumbers: [Int], positions: [Vec3], basis: [Int: OrbitalShells]) {
        self.lattice = lattice
        self.atomicNumbers = atomicNumbers
        self.positions = positions
        self.basis = basis
    }

    public var atomCount: Int { atomicNumbers.count }
    public func shells(ofAtom i: Int) -> OrbitalShells { basis[atomicNumbers[i]]! }
    public func orbitalCount(ofAtom i: Int) -> Int { shells(ofAtom: i).orbitalCount }
    public var orbitalCounts: [Int] { atomicNumbers.map { basis[$0]!.orbitalCount } }
    public var totalOrbitals: Int { orbitalCounts.reduce(0, +) }
    /// Offset of each atom's first orbital in the full (unit-cell) orbital list.
    public var orbitalOffsets: [Int] {
        var offsets: [Int] = []
        var o = 0
        for n in orbitalCounts { offsets.append(o); o += n }
        return offsets
    }
    /// Distinct atomic numbers in order of first appearance.
    public var species: [Int] {
        var seen = Set<Int>()
        return atomicNumbers.filter { seen.insert($0).inserted }
    }
}

/// Key of one operator block ⟨i, 0| O |j, R⟩ (0-based atoms).
public struct BlockKey: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var shift: LatticeShift
    public var i: Int
    public var j: Int
    public init(shift: LatticeShift, i: Int, j: Int) { self.shift = shift; self.i = i; self.j = j }
    public init(_ r1: Int, _ r2: Int, _ r3: Int, _ i: Int, _ j: Int) {
        self.init(shift: LatticeShift(r1, r2, r3), i: i, j: j)
    }
    /// The key of the Hermitian partner block: O(R, i, j) = O(−R, j, i)ᵀ.
    public var transposed: BlockKey { BlockKey(shift: LatticeShift.zero &- shift, i: j, j: i) }
    public static func < (a: BlockKey, b: BlockKey) -> Bool {
        (a.shift.x, a.shift.y, a.shift.z, a.i, a.j) < (b.shift.x, b.shift.y, b.shift.z, b.i, b.j)
    }
    public var description: String { "[\(shift.x), \(shift.y), \(shift.z), \(i), \(j)]" }
}

/// A block-sparse real-space operator (H in eV, or S): one dense row-major block per key, stored
/// contiguously. Block shapes follow the structure's orbital counts.
public struct BlockOperator: Equatable, Sendable {
    public private(set) var keys: [BlockKey]
    /// `offsets[b] ..< offsets[b + 1]` is block b's range in `entries`.
    public private(set) var offsets: [Int]
    public var entries: [Double]
    public private(set) var shapes: [SIMD2<Int>]
    private var index: [BlockKey: Int]

    public init() {
        keys = []; offsets = [0]; entries = []; shapes = []; index = [:]
    }

    public var blockCount: Int { keys.count }

    /// Appends a block; replaces nothing (a duplicate key is a programming error, formats check it).
    public mutating func append(_ key: BlockKey, rows: Int, cols: Int, values: some Collection<Double>) {
        precondition(index[key] == nil, "duplicate block \(key)")
        precondition(values.count == rows * cols, "block \(key) has \(values.count) values, expected \(rows)×\(cols)")
        index[key] = keys.count
        keys.append(key)
        shapes.append(SIMD2(rows, cols))
        entries.append(contentsOf: values)
        offsets.append(entries.count)
    }

    public func position(of key: BlockKey) -> Int? { index[key] }
    public func contains(_ key: BlockKey) -> Bool { index[key] != nil }

    /// Row-major values of block b.
    public func values(at b: Int) -> ArraySlice<Double> { entries[offsets[b] ..< offsets[b + 1]] }
    public func values(for key: BlockKey) -> ArraySlice<Double>? { index[key].map { values(at: $0) } }
    public func shape(at b: Int) -> SIMD2<Int> { shapes[b] }

    /// Largest |O(R,i,j) − O(−R,j,i)ᵀ| over blocks whose partner is present, and the keys whose
    /// partner is missing.
    public func hermiticityDeviation() -> (maxDeviation: Double, unpaired: [BlockKey]) {
        var worst = 0.0
        var unpaired: [BlockKey] = []
        for (b, key) in keys.enumerated() {
            guard let p = index[key.transposed] else { unpaired.append(key); continue }
            let s = shapes[b]
            let mine = offsets[b], theirs = offsets[p]
            for r in 0 ..< s.x {
                for c in 0 ..< s.y {
                    let d = abs(entries[mine + r * s.y + c] - entries[theirs + c * s.x + r])
                    if d > worst || d.isNaN { worst = d.isNaN ? .infinity : d }
                }
            }
        }
        return (worst, unpaired)
    }

    /// The same blocks in sorted key order (R, then i, then j).
    public func sorted() -> BlockOperator {
        var out = BlockOperator()
        for b in keys.indices.sorted(by: { keys[$0] < keys[$1] }) {
            out.append(keys[b], rows: shapes[b].x, cols: shapes[b].y, values: values(at: b))
        }
        return out
    }
}

/// A structure with the DFT data that came with it.
public struct DFTRecord: Equatable, Sendable {
    /// A name for messages and output folders (the folder or archive member it came from).
    public var name: String
    public var structure: Structure
    public var hamiltonian: BlockOperator?
    public var overlap: BlockOperator?
    /// Fermi energy in eV, when known.
    public var fermiEnergy: Double?
    public var spinful: Bool
    /// Whether the basis is orthogonal (S = 1, no overlap file).
    public var orthogonalBasis: Bool
    /// info.json keys the fields above do not model (DeepH-dock's `occupation`, dataset extras such
    /// as `homo_eV`), in file order, so that converting or ingesting a folder keeps them. Each value
    /// is its JSON text: this module knows no JSON; Formats parses and writes these.
    public var extraInfo: [ExtraInfo]

    public struct ExtraInfo: Equatable, Sendable {
        public var key: String
        /// The value as JSON text (`26`, `"pbe"`, `[4, 4, 1]`, `{}`).
        public var json: String
        public init(key: String, json: String) { self.key = key; self.json = json }
    }

    public init(name: String, structure: Structure, hamiltonian: BlockOperator? = nil,
                overlap: BlockOperator? = nil, fermiEnergy: Double? = nil, spinful: Bool = false,
                orthogonalBasis: Bool = false, extraInfo: [ExtraInfo] = []) {
        self.extraInfo = extraInfo
        self.name = name
        self.structure = structure
        self.hamiltonian = hamiltonian
        self.overlap = overlap
        self.fermiEnergy = fermiEnergy
        self.spinful = spinful
        self.orthogonalBasis = orthogonalBasis
    }
}
