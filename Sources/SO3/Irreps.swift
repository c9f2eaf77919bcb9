// The irreps vocabulary of O(3), written like e3nn: "64x0e+32x1o+16x2e".
import Foundation

/// One irreducible representation of O(3): angular momentum l ≥ 0 and parity p = ±1
/// (written "e" for +1, "o" for −1; "y" when parsing means the spherical-harmonic parity (−1)^l).
public struct Irrep: Hashable, Comparable, Sendable, CustomStringConvertible {
    public let l: Int
    public let p: Int

    public init(_ l: Int, _ p: Int) throws {
        guard l >= 0 else { throw SO3Error.badIrrepsString("\(l)", reason: "l must be ≥ 0") }
        guard p == 1 || p == -1 else { throw SO3Error.badIrrepsString("\(l)", reason: "parity must be +1 or −1, got \(p)") }
        self.l = l
        self.p = p
    }

    /// Trusted construction for code that has already checked l ≥ 0 and p = ±1.
    init(unchecked l: Int, _ p: Int) { self.l = l; self.p = p }

    /// Parses "1o", "2e", "3y".
    public init(_ s: String) throws {
        let t = s.trimmingCharacters(in: .whitespaces)
        guard let last = t.last, let l = Int(t.dropLast()), l >= 0, t.dropLast().allSatisfy(\.isASCII) else {
            throw SO3Error.badIrrepsString(s, reason: "an irrep is a non-negative integer followed by e, o or y (e.g. \"1o\")")
        }
        switch last {
        case "e": self.init(unchecked: l, 1)
        case "o": self.init(unchecked: l, -1)
        case "y": self.init(unchecked: l, l % 2 == 0 ? 1 : -1)
        default: throw SO3Error.badIrrepsString(s, reason: "parity must be e, o or y, got \"\(last)\"")
        }
    }

    public var dim: Int { 2 * l + 1 }
    public var description: String { "\(l)\(p == 1 ? "e" : "o")" }

    /// The parity of the degree-l spherical harmonics, (−1)^l.
    public static func sphericalHarmonic(_ l: Int) -> Irrep { Irrep(unchecked: l, l % 2 == 0 ? 1 : -1) }

    /// Irreps in the tensor product: L = |l1−l2| … l1+l2, parity p1·p2.
    public static func * (a: Irrep, b: Irrep) -> [Irrep] {
        (abs(a.l - b.l) ... (a.l + b.l)).map { Irrep(unchecked: $0, a.p * b.p) }
    }

    /// Ordered by l, then the spherical-harmonic parity (−1)^l before the other one
    /// (0e < 0o < 1o < 1e < 2e < 2o), as e3nn sorts.
    public static func < (a: Irrep, b: Irrep) -> Bool {
        func key(_ r: Irrep) -> (Int, Int) { (r.l, r.p == (r.l % 2 == 0 ? 1 : -1) ? 0 : 1) }
        return key(a) < key(b)
    }
}

/// `mul` copies of one irrep.
public struct MulIrrep: Hashable, Sendable, CustomStringConvertible {
    public var mul: Int
    public var irrep: Irrep
    public init(_ mul: Int, _ irrep: Irrep) { self.mul = mul; self.irrep = irrep }
    public var dim: Int { mul * irrep.dim }
    public var description: String { "\(mul)x\(irrep)" }
}

/// A direct sum of irreps with multiplicities, in order. Data laid out by an `Irreps` is the
/// concatenation, per entry, of `mul` blocks of `2l+1` components (mul-major, as in e3nn).
public struct Irreps: Hashable, Sendable, CustomStringConvertible, ExpressibleByArrayLiteral {
    public var entries: [MulIrrep]

    public init(_ entries: [MulIrrep]) { self.entries = entries }
    public init(arrayLiteral elements: MulIrrep...) { entries = elements }

    /// Parses "64x0e+32x1o + 16x2e", "1o" (multiplicity 1), "0x2e" (kept) or "" (empty).
    public init(_ s: String) throws {
        let t = s.trimmingCharacters(in: .whitespaces)
        entries = []
        if t.isEmpty { return }
        for part in t.split(separator: "+", omittingEmptySubsequences: false) {
            let term = part.trimmingCharacters(in: .whitespaces)
            guard !term.isEmpty else {
                throw SO3Error.badIrrepsString(s, reason: "empty term between \"+\" signs")
            }
            let pieces = term.split(separator: "x", omittingEmptySubsequences: false)
            switch pieces.count {
            case 1:
                entries.append(MulIrrep(1, try Self.irrep(String(pieces[0]), in: s)))
            case 2:
                let m = pieces[0].trimmingCharacters(in: .whitespaces)
                guard let mul = Int(m), mul >= 0, m.allSatisfy(\.isASCII) else {
                    throw SO3Error.badIrrepsString(s, reason: "multiplicity \"\(m)\" in \"\(term)\" is not a non-negative integer")
                }
                entries.append(MulIrrep(mul, try Self.irrep(String(pieces[1]), in: s)))
            default:
                throw SO3Error.badIrrepsString(s, reason: "term \"\(term)\" has more than one \"x\"")
            }
        }
    }

    private static func irrep(_ t: String, in whole: String) throws -> Irrep {
        do { return try Irrep(t) } catch {
            throw SO3Error.badIrrepsString(whole, reason: "term \"\(t.trimmingCharacters(in: .whitespaces))\" is not an irrep like 1o, 2e or 3y")
        }
    }

    /// "1x0e+1x1o+1x2e+…" up to lmax, each with parity p^l (p = −1 for true spherical harmonics).
    public static func sphericalHarmonics(lmax: Int, p: Int = -1) -> Irreps {
        Irreps((0 ..< max(lmax + 1, 0)).map { l in MulIrrep(1, Irrep(unchecked: l, (p == -1 && l % 2 == 1) ? -1 : 1)) })
    }

    public var description: String { entries.map(\.description).joined(separator: "+") }

    public var dim: Int { entries.reduce(0) { $0 + $1.dim } }
    /// Total number of irreps (Σ mul).
    public var count: Int { entries.reduce(0) { $0 + $1.mul } }
    public var lmax: Int? { entries.map(\.irrep.l).max() }
    /// Every l present, once per copy (e3nn's `ls`).
    public var ls: [Int] { entries.flatMap { Array(repeating: $0.irrep.l, count: $0.mul) } }

    /// Component range of each entry.
    public var slices: [Range<Int>] {
        var out: [Range<Int>] = []
        var o = 0
        for e in entries { out.append(o ..< o + e.dim); o += e.dim }
        return out
    }

    /// Multiplicity of `irrep` summed over all entries.
    public func multiplicity(of irrep: Irrep) -> Int {
        entries.filter { $0.irrep == irrep }.reduce(0) { $0 + $1.mul }
    }

    /// Drops zero multiplicities and merges neighbouring equal irreps; the data layout is
    /// unchanged (no reordering), as e3nn's `simplify`.
    public func simplified() -> Irreps {
        var out: [MulIrrep] = []
        for e in entries where e.mul > 0 {
            if let last = out.last, last.irrep == e.irrep { out[out.count - 1].mul += e.mul } else { out.append(e) }
        }
        return Irreps(out)
    }

    /// Entries sorted by irrep (stable). `permutation[i]` is the new position of old entry i;
    /// `inverse[j]` the old position of new entry j.
    public func sorted() -> (irreps: Irreps, permutation: [Int], inverse: [Int]) {
        let inverse = entries.indices.sorted { (entries[$0].irrep, $0) < (entries[$1].irrep, $1) }
        var perm = [Int](repeating: 0, count: entries.count)
        for (new, old) in inverse.enumerated() { perm[old] = new }
        return (Irreps(inverse.map { entries[$0] }), perm, inverse)
    }

    /// Irreps regrouped so each irrep appears once, in sorted order.
    public func regrouped() -> Irreps { sorted().irreps.simplified() }

    public static func + (a: Irreps, b: Irreps) -> Irreps { Irreps(a.entries + b.entries) }

    /// Whether every irrep has the parity (−1)^l of the spherical harmonics.
    public var isSphericalHarmonicParity: Bool {
        entries.allSatisfy { $0.irrep.p == ($0.irrep.l % 2 == 0 ? 1 : -1) }
    }
}

/// Irreps travel in configuration files and checkpoints as their string ("64x0e+32x1o").
extension Irreps: Codable {
    public init(from decoder: Decoder) throws {
        let container = try decoder.singleValueContainer()
        let text = try container.decode(String.self)
        do { try self.init(text) } catch {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: "\(error)")
        }
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}
