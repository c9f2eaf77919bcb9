// K-paths: DeepH-dock's K_PATH text format and automatically chosen standard paths, expanded into
// k-points and the cumulative distances a band plot is drawn against.
import Foundation
import StageAPI
import Structures

/// One straight segment of a k-path, endpoints in fractional reciprocal coordinates.
public struct KPathSegment: Equatable, Sendable {
    /// Number of k-points on the segment, both endpoints included.
    public var count: Int
    public var start: Vec3
    public var end: Vec3
    public var startLabel: String
    public var endLabel: String

    public init(count: Int, start: Vec3, end: Vec3, startLabel: String, endLabel: String) {
        self.count = count; self.start = start; self.end = end
        self.startLabel = startLabel; self.endLabel = endLabel
    }
}

public struct KPath: Equatable, Sendable {
    public var segments: [KPathSegment]
    public init(segments: [KPathSegment]) { self.segments = segments }

    /// Most k-points a path may have, all segments together (a band plot needs a few hundred;
    /// each point is one generalized eigenproblem). Checked when a K_PATH is parsed and before
    /// any band calculation, so a file asking for 10⁸ points fails at once instead of allocating.
    public static let maxPoints = 100_000
    /// Largest K_PATH file read (a path is a few lines).
    public static let maxFileBytes = 1 << 20

    /// Total k-points, or nil when the sum overflows.
    public var pointCount: Int? {
        var total = 0
        for s in segments {
            let (sum, overflow) = total.addingReportingOverflow(s.count)
            if overflow { return nil }
            total = sum
        }
        return total
    }

    /// Throws unless the path has at most `maxPoints` points; `source` names where it came from.
    public func checkSize(source: String) throws {
        guard let n = pointCount, n <= Self.maxPoints else {
            throw BandsError.kpathTooLong(file: source, points: pointCount, limit: Self.maxPoints)
        }
    }

    /// Parses DeepH-dock's K_PATH: one segment per line, `N k1 k2 k3 k1' k2' k3' LABEL1 LABEL2`.
    /// Blank lines and `#` comments are skipped. `file` names the source in errors.
    public static func parse(_ text: String, file: String = "K_PATH") throws -> KPath {
        var segments: [KPathSegment] = []
        for (n, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
            let tokens = line.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" }).map(String.init)
            if tokens.isEmpty { continue }
            guard tokens.count == 9 else {
                throw BandsError.kpathSyntax(file: file, line: n + 1,
                                             message: "expected 9 fields `N k1 k2 k3 k1' k2' k3' LABEL1 LABEL2`, found \(tokens.count)")
            }
            guard let count = Int(tokens[0]), count >= 2 else {
                throw BandsError.kpathSyntax(file: file, line: n + 1, message: "point count `\(tokens[0])` is not an integer ≥ 2")
            }
            let soFar = segments.reduce(0) { $0 + $1.count }
            guard count <= KPath.maxPoints - soFar else {
                throw BandsError.kpathSyntax(file: file, line: n + 1,
                                             message: "point count \(count) brings the path to more than \(KPath.maxPoints) k-points, the limit")
            }
            var coords: [Double] = []
            for (f, t) in tokens[1 ... 6].enumerated() {
                guard let v = Double(t), v.isFinite else {
                    let names = ["k1", "k2", "k3", "k1'", "k2'", "k3'"]
                    throw BandsError.kpathSyntax(file: file, line: n + 1, message: "\(names[f]) = `\(t)` is not a finite number")
                }
                coords.append(v)
            }
            segments.append(KPathSegment(count: count, start: Vec3(coords[0], coords[1], coords[2]),
                                         end: Vec3(coords[3], coords[4], coords[5]),
                                         startLabel: tokens[7], endLabel: tokens[8]))
        }
        guard !segments.isEmpty else { throw BandsError.emptyKPath(file: file) }
        return KPath(segments: segments)
    }

    public static func read(_ url: URL) throws -> KPath {
        let text: String
        if let size = (try? FileManager.default.attributesOfItem(atPath: url.path))?[.size] as? NSNumber, size.intValue > maxFileBytes {
            throw BandsError.kpathUnreadable(file: url.path, reason: "\(size.intValue) bytes, over the limit of \(maxFileBytes) bytes for a K_PATH file")
        }
        do { text = try String(contentsOf: url, encoding: .utf8) } catch {
            throw BandsError.kpathUnreadable(file: url.path, reason: ErrorText.reason(of: error))
        }
        return try parse(text, file: url.path)
    }

    /// The K_PATH text of this path (round-trips through `parse`).
    public var text: String {
        segments.map { s in
            let f = { (v: Double) in String(format: "%.10f", v) }
            return "\(s.count)  \(f(s.start.x)) \(f(s.start.y)) \(f(s.start.z))  \(f(s.end.x)) \(f(s.end.y)) \(f(s.end.z))  \(s.startLabel) \(s.endLabel)"
        }.joined(separator: "\n") + "\n"
    }

    /// All k-points, segment after segment (shared endpoints repeated, as DeepH-dock does).
    public var kpoints: [Vec3] {
        segments.flatMap { s in
            (0 ..< s.count).map { i in s.start + (s.end - s.start) * (Double(i) / Double(s.count - 1)) }
        }
    }

    /// Cartesian length (1/Å, without the 2π) of a fractional k difference.
    static func length(_ delta: Vec3, _ lattice: Lattice) -> Double {
        let b = lattice.reciprocalVectors
        return norm(b[0] * delta.x + b[1] * delta.y + b[2] * delta.z) / (2 * Double.pi)
    }

    /// Cumulative distance at each segment boundary (segments + 1 values). A jump between
    /// segments (end label ≠ next start) adds no distance, as in DeepH-dock.
    public func boundaryDistances(_ lattice: Lattice) -> [Double] {
        var d = [0.0]
        for s in segments { d.append(d.last! + Self.length(s.end - s.start, lattice)) }
        return d
    }

    /// Cumulative distance of every k-point.
    public func distances(_ lattice: Lattice) -> [Double] {
        let boundaries = boundaryDistances(lattice)
        var out: [Double] = []
        for (p, s) in segments.enumerated() {
            let step = Self.length(s.end - s.start, lattice) / Double(s.count - 1)
            for i in 0 ..< s.count { out.append(boundaries[p] + step * Double(i)) }
        }
        return out
    }

    /// Tick labels at the segment boundaries: "A|B" where a path jumps.
    public var boundaryLabels: [String] {
        var labels = [segments[0].startLabel]
        for p in 1 ..< segments.count {
            let prev = segments[p - 1].endLabel, next = segments[p].startLabel
            labels.append(prev == next ? next : "\(prev)|\(next)")
        }
        labels.append(segments.last!.endLabel)
        return labels
    }
}

/// Which standard path `KPath.standard` chose, for reports.
public enum LatticeKind: String, Sendable {
    case molecule, hexagonal2D = "2D hexagonal", square2D = "2D square", rectangular2D = "2D rectangular",
         oblique2D = "2D oblique (generic path)", simpleCubic = "simple cubic", fcc = "face-centred cubic",
         bcc = "body-centred cubic", hexagonal3D = "3D hexagonal", chain1D = "1D chain", generic3D = "3D (generic path)"
}

extension KPath {
    /// A standard path for the lattice, with about `density` points per 1/Å of path (at least
    /// `minimumPoints` in all, so small Brillouin zones of supercells are not undersampled).
    /// Lattices are classified with a `tolerance` (relative lengths, cosines) loose enough for
    /// the few-percent strains of training sets: a strained hexagonal cell still gets Γ–M–K–Γ. `periodic`
    /// says which directions disperse (usually `BlochSystem.dispersiveDirections`). Paths:
    /// 2D hexagonal Γ–M–K–Γ, square Γ–X–M–Γ, rectangular Γ–X–S–Y–Γ; 3D simple cubic
    /// Γ–X–M–Γ–R–X|M–R, fcc Γ–X–W–K–Γ–L–U–W–L–K|U–X, bcc Γ–H–N–Γ–P–H|P–N, hexagonal
    /// Γ–M–K–Γ–A–L–H–A|L–M|K–H (Setyawan–Curtarolo labels). Other cells get a generic path
    /// through the face centres of the reciprocal cell, reported as such.
    public static func standard(for lattice: Lattice, periodic: [Bool], density: Double = 60, minimumPoints: Int = 150,
                                tolerance: Double = 0.05) -> (path: KPath, kind: LatticeKind) {
        let dims = (0 ..< 3).filter { periodic[$0] }
        let a = lattice.vectors
        func close(_ x: Double, _ y: Double) -> Bool { abs(x - y) <= tolerance * max(1, abs(x), abs(y)) }
        func cosAngle(_ p: Int, _ q: Int) -> Double { dot(a[p], a[q]) / (norm(a[p]) * norm(a[q])) }
        func point(_ values: [Int: Double]) -> Vec3 {
            var v = Vec3.zero
            for (d, x) in values { v[d] = x }
            return v
        }
        var kind: LatticeKind
        var stops: [[(String, Vec3)]]   // runs of connected points; runs are joined by jumps
        switch dims.count {
        case 0:
            return (KPath(segments: [KPathSegment(count: 2, start: .zero, end: .zero, startLabel: "GAMMA", endLabel: "GAMMA")]), .molecule)
        case 1:
            kind = .chain1D
            stops = [[("GAMMA", .zero), ("X", point([dims[0]: 0.5]))]]
        case 2:
            let (p, q) = (dims[0], dims[1])
            let sameLength = close(norm(a[p]), norm(a[q]))
            let c = cosAngle(p, q)
            if sameLength && (close(c, -0.5) || close(c, 0.5)) {
                kind = .hexagonal2D
                // K is the corner of the hexagonal zone: |K| = |b|/√3. Which fractional point that
                // is depends on whether the real-space angle is 60° or 120°.
                let kA = point([p: 1.0 / 3, q: 1.0 / 3]), kB = point([p: 2.0 / 3, q: 1.0 / 3])
                let bLen = length(point([p: 1]), lattice)
                let target = bLen / 3.0.squareRoot()
                let kPoint = abs(length(kA, lattice) - target) <= abs(length(kB, lattice) - target) ? kA : kB
                stops = [[("GAMMA", .zero), ("M", point([p: 0.5])), ("K", kPoint), ("GAMMA", .zero)]]
            } else if abs(c) < tolerance {
                kind = sameLength ? .square2D : .rectangular2D
                stops = sameLength
                    ? [[("GAMMA", .zero), ("X", point([p: 0.5])), ("M", point([p: 0.5, q: 0.5])), ("GAMMA", .zero)]]
                    : [[("GAMMA", .zero), ("X", point([p: 0.5])), ("S", point([p: 0.5, q: 0.5])), ("Y", point([q: 0.5])), ("GAMMA", .zero)]]
            } else {
                kind = .oblique2D
                stops = [[("GAMMA", .zero), ("X", point([p: 0.5])), ("S", point([p: 0.5, q: 0.5])), ("Y", point([q: 0.5])), ("GAMMA", .zero)]]
            }
        default:
            let lengths = (0 ..< 3).map { norm(a[$0]) }
            let c01 = cosAngle(0, 1), c02 = cosAngle(0, 2), c12 = cosAngle(1, 2)
            let allEqual = close(lengths[0], lengths[1]) && close(lengths[1], lengths[2])
            let allCos = { (x: Double) in close(c01, x) && close(c02, x) && close(c12, x) }
            let g = Vec3.zero
            if allEqual && allCos(0) {
                kind = .simpleCubic
                let x = Vec3(0, 0.5, 0), m = Vec3(0.5, 0.5, 0), r = Vec3(0.5, 0.5, 0.5)
                stops = [[("GAMMA", g), ("X", x), ("M", m), ("GAMMA", g), ("R", r), ("X", x)], [("M", m), ("R", r)]]
            } else if allEqual && allCos(0.5) {
                kind = .fcc
                let x = Vec3(0.5, 0, 0.5), l = Vec3(0.5, 0.5, 0.5), w = Vec3(0.5, 0.25, 0.75)
                let k = Vec3(0.375, 0.375, 0.75), u = Vec3(0.625, 0.25, 0.625)
                stops = [[("GAMMA", g), ("X", x), ("W", w), ("K", k), ("GAMMA", g), ("L", l), ("U", u), ("W", w), ("L", l), ("K", k)],
                         [("U", u), ("X", x)]]
            } else if allEqual && allCos(-1.0 / 3) {
                kind = .bcc
                let h = Vec3(0.5, -0.5, 0.5), p = Vec3(0.25, 0.25, 0.25), n = Vec3(0, 0, 0.5)
                stops = [[("GAMMA", g), ("H", h), ("N", n), ("GAMMA", g), ("P", p), ("H", h)], [("P", p), ("N", n)]]
            } else if close(lengths[0], lengths[1]) && close(c01, -0.5) && abs(c02) < tolerance && abs(c12) < tolerance {
                kind = .hexagonal3D
                let m = Vec3(0.5, 0, 0), k = Vec3(1.0 / 3, 1.0 / 3, 0), aPt = Vec3(0, 0, 0.5)
                let l = Vec3(0.5, 0, 0.5), h = Vec3(1.0 / 3, 1.0 / 3, 0.5)
                stops = [[("GAMMA", g), ("M", m), ("K", k), ("GAMMA", g), ("A", aPt), ("L", l), ("H", h), ("A", aPt)],
                         [("L", l), ("M", m)], [("K", k), ("H", h)]]
            } else {
                kind = .generic3D
                let x = Vec3(0.5, 0, 0), y = Vec3(0, 0.5, 0), z = Vec3(0, 0, 0.5), s = Vec3(0.5, 0.5, 0)
                stops = [[("GAMMA", g), ("X", x), ("S", s), ("Y", y), ("GAMMA", g), ("Z", z)]]
            }
        }
        let total = stops.reduce(0.0) { sum, run in
            sum + zip(run, run.dropFirst()).reduce(0.0) { $0 + length($1.1.1 - $1.0.1, lattice) }
        }
        let perLength = total > 0 ? max(density, Double(minimumPoints) / total) : density
        var segments: [KPathSegment] = []
        for run in stops {
            for (from, to) in zip(run, run.dropFirst()) {
                // Clamped before the Int conversion: a huge density (or a lattice that slipped
                // past the readers' checks) yields an over-long path that `checkSize` refuses,
                // never a trapping conversion of ∞ or NaN.
                let x = length(to.1 - from.1, lattice) * perLength
                let count = x.isFinite ? max(2, Int(min(x, Double(KPath.maxPoints)).rounded()) + 1) : KPath.maxPoints + 1
                segments.append(KPathSegment(count: count, start: from.1, end: to.1, startLabel: from.0, endLabel: to.0))
            }
        }
        return (KPath(segments: segments), kind)
    }
}

/// A Monkhorst–Pack mesh: u_r = (2r − q − 1) / (2q), r = 1…q along each direction (Γ-centred
/// for odd q).
public func monkhorstPack(_ mesh: SIMD3<Int>) throws -> [Vec3] {
    guard mesh.x >= 1, mesh.y >= 1, mesh.z >= 1 else {
        throw BandsError.invalidMesh("every mesh size must be ≥ 1, got \(mesh.x),\(mesh.y),\(mesh.z)")
    }
    let (xy, o1) = mesh.x.multipliedReportingOverflow(by: mesh.y)
    let (xyz, o2) = xy.multipliedReportingOverflow(by: mesh.z)
    guard !o1, !o2, xyz <= 1_000_000 else {
        throw BandsError.invalidMesh("\(mesh.x)×\(mesh.y)×\(mesh.z) k-points is more than a million")
    }
    func axis(_ q: Int) -> [Double] { (1 ... q).map { Double(2 * $0 - q - 1) / Double(2 * q) } }
    var out: [Vec3] = []
    for x in axis(mesh.x) { for y in axis(mesh.y) { for z in axis(mesh.z) { out.append(Vec3(x, y, z)) } } }
    return out
}
