// Readers of GPAW's data files (as Debian's gpaw-data installs them, optionally gzip-compressed):
// `<El>[.<name>].<basis>.basis` — numerical atomic orbitals φ(r) on an equidistant grid (Bohr) —
// and the PAW setup `<El>[.<name>].<XC>` — projectors p̃(r), all-electron and pseudo partial waves
// on the grid r = a·i/(n−i). Tables are turned into GPAW's own splines (the basis as stored; the
// projectors resampled on 25 bins by quadratic interpolation, as GPAW's setup does), so integrals
// follow GPAW's LCAO numbers. The element tables are a `RadialTableSource`-shaped result
// (l, values on a grid, cut-off), the shape that ABACUS `.orb` and OpenMX `.pao` readers can fill too.
import Foundation
import CArchive
import Structures

/// A tiny reader for the flat XML of GPAW's files: elements with attributes and numeric text.
struct FlatXML {
    struct Element { var name: String; var attributes: [String: String]; var text: Substring }
    let elements: [Element]

    init(_ text: String) {
        var out: [Element] = []
        var rest = Substring(text)
        while let open = rest.firstIndex(of: "<") {
            rest = rest[rest.index(after: open)...]
            guard let close = rest.firstIndex(of: ">") else { break }
            let tag = rest[..<close]
            rest = rest[rest.index(after: close)...]
            if tag.hasPrefix("/") || tag.hasPrefix("?") || tag.hasPrefix("!") { continue }
            let selfClosing = tag.hasSuffix("/")
            let body = selfClosing ? tag.dropLast() : tag
            let name = String(body.prefix { !$0.isWhitespace })
            var attributes: [String: String] = [:]
            var a = body.dropFirst(name.count)
            while let eq = a.firstIndex(of: "=") {
                let key = a[..<eq].trimmingCharacters(in: .whitespacesAndNewlines)
                a = a[a.index(after: eq)...].drop { $0.isWhitespace }
                guard let quote = a.first, quote == "\"" || quote == "'" else { break }
                a = a.dropFirst()
                guard let end = a.firstIndex(of: quote) else { break }
                attributes[key] = String(a[..<end])
                a = a[a.index(after: end)...]
            }
            var textPart: Substring = ""
            if !selfClosing, let next = rest.firstIndex(of: "<") { textPart = rest[..<next] }
            out.append(Element(name: name, attributes: attributes, text: textPart))
        }
        elements = out
    }

    func all(_ name: String) -> [Element] { elements.filter { $0.name == name } }
    func first(_ name: String) -> Element? { elements.first { $0.name == name } }
}

enum DataFile {
    /// The file's text, gunzipped when it is gzip-compressed (libarchive's raw format).
    static func text(at path: String) throws -> String {
        guard FileManager.default.fileExists(atPath: path) else {
            throw BasisError(file: path, message: "no such file")
        }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw BasisError(file: path, message: "cannot read the file")
        }
        let bytes = [UInt8](data)
        if bytes.count >= 2 && bytes[0] == 0x1f && bytes[1] == 0x8b {
            guard let a = archive_read_new() else { throw BasisError(file: path, message: "libarchive: out of memory") }
            defer { archive_read_free(a) }
            archive_read_support_filter_gzip(a)
            archive_read_support_format_raw(a)
            guard archive_read_open_filename(a, path, 1 << 16) == ARCHIVE_OK else {
                throw BasisError(file: path, message: "cannot open gzip stream")
            }
            var entry: OpaquePointer?
            guard archive_read_next_header(a, &entry) == ARCHIVE_OK else {
                throw BasisError(file: path, message: "corrupt gzip stream")
            }
            var out: [UInt8] = []
            var chunk = [UInt8](repeating: 0, count: 1 << 16)
            while true {
                let n = chunk.withUnsafeMutableBytes { archive_read_data(a, $0.baseAddress, $0.count) }
                if n == 0 { break }
                guard n > 0 else { throw BasisError(file: path, message: "truncated or corrupt gzip stream") }
                out.append(contentsOf: chunk[0 ..< n])
            }
            guard let s = String(bytes: out, encoding: .utf8) else { throw BasisError(file: path, message: "not UTF-8 text") }
            return s
        }
        guard let s = String(bytes: bytes, encoding: .utf8) else { throw BasisError(file: path, message: "not UTF-8 text") }
        return s
    }

    static func numbers(_ text: Substring, file: String, field: String) throws -> [Double] {
        var out: [Double] = []
        for word in text.split(whereSeparator: { $0.isWhitespace }) {
            guard let v = Double(word), v.isFinite else {
                throw BasisError(file: file, field: field, message: "'\(word.prefix(30))' is not a finite number")
            }
            out.append(v)
        }
        return out
    }
}

/// f/r^l with the value at r = 0 extrapolated from the next two points in r² (GPAW's divrl).
func dividedByRPowerL(_ f: [Double], l: Int, r: [Double]) -> [Double] {
    guard l > 0, f.count >= 3 else { return f }
    var b = f
    for g in 1 ..< b.count { b[g] /= pow(r[g], Double(l)) }
    let r1 = r[1] * r[1], r2 = r[2] * r[2]
    b[0] = (b[1] * r2 - b[2] * r1) / (r2 - r1)
    return b
}

public enum GPAWBasisReader {
    /// Reads the orbitals of a GPAW `.basis` file (φ(r) on r = d·i, Bohr).
    public static func readBasis(at path: String, symbol: String) throws -> [RadialFunction] {
        let xml = FlatXML(try DataFile.text(at: path))
        guard xml.first("paw_basis") != nil else {
            throw BasisError(file: path, field: "paw_basis", message: "not a GPAW basis file")
        }
        var grids: [String: (d: Double, count: Int)] = [:]
        for g in xml.all("radial_grid") {
            guard g.attributes["eq"] == "r=d*i", let d = g.attributes["d"].flatMap(Double.init),
                  let end = g.attributes["iend"].flatMap(Int.init), let id = g.attributes["id"] else {
                throw BasisError(file: path, field: "radial_grid", message: "only equidistant grids r=d*i with d, iend, id are supported")
            }
            grids[id] = (d, end + 1)
        }
        var out: [RadialFunction] = []
        for (k, bf) in xml.all("basis_function").enumerated() {
            let field = "basis_function[\(k)]"
            guard let l = bf.attributes["l"].flatMap(Int.init), (0 ... 6).contains(l) else {
                throw BasisError(file: path, field: field, message: "missing or invalid l")
            }
            guard let gid = bf.attributes["grid"], let grid = grids[gid] else {
                throw BasisError(file: path, field: field, message: "unknown grid '\(bf.attributes["grid"] ?? "")'")
            }
            let values = try DataFile.numbers(bf.text, file: path, field: field)
            guard values.count >= 3, values.count <= grid.count else {
                throw BasisError(file: path, field: field, message: "\(values.count) values for a grid of \(grid.count) points")
            }
            if let ng = bf.attributes["ng"].flatMap(Int.init), ng != values.count {
                throw BasisError(file: path, field: field, message: "ng = \(ng) but \(values.count) values")
            }
            let r = (0 ..< values.count).map { Double($0) * grid.d }
            let b = dividedByRPowerL(values, l: l, r: r)
            out.append(RadialFunction(l: l, spline: UniformCubicSpline(cutoff: r[r.count - 1], values: b)))
        }
        guard !out.isEmpty else { throw BasisError(file: path, field: "basis_function", message: "no basis functions for \(symbol)") }
        return out
    }

    /// Reads a PAW setup: projectors (as GPAW's 25-bin splines) and ΔS_ij over m-expanded channels.
    public static func readSetup(at path: String) throws -> (projectors: [RadialFunction], overlapCorrection: [Double]) {
        let xml = FlatXML(try DataFile.text(at: path))
        guard let root = xml.first("paw_setup") else {
            throw BasisError(file: path, field: "paw_setup", message: "not a PAW setup file")
        }
        let version = Double(root.attributes["version"] ?? "0") ?? 0
        let generatorVersion = Int(xml.first("generator")?.attributes["version"] ?? "1") ?? 1
        guard let grid = xml.first("radial_grid"), let a = grid.attributes["a"].flatMap(Double.init),
              let n = grid.attributes["n"].flatMap(Int.init), grid.attributes["eq"] == "r=a*i/(n-i)" else {
            throw BasisError(file: path, field: "radial_grid", message: "expected eq=\"r=a*i/(n-i)\" with a and n")
        }
        // GPAW: r = α g/(1 − β g) with α = a/n, β = 1/n.
        let alpha = a / Double(n), beta = 1.0 / Double(n)
        let r = (0 ..< n).map { g in alpha * Double(g) / (1 - beta * Double(g)) }
        let dr = r.map { (beta * $0 + alpha) * (beta * $0 + alpha) / alpha }
        func r2g(_ x: Double) -> Double { x / (alpha + beta * x) }

        struct State { var id: String; var l: Int; var rc: Double }
        var states: [State] = []
        for s in xml.all("state") {
            guard let id = s.attributes["id"], let l = s.attributes["l"].flatMap(Int.init),
                  let rc = s.attributes["rc"].flatMap({ Double($0.trimmingCharacters(in: .whitespaces)) }) else {
                throw BasisError(file: path, field: "valence_states", message: "a state lacks id, l or rc")
            }
            states.append(State(id: id, l: l, rc: rc))
        }
        func table(_ tag: String, _ id: String) throws -> [Double] {
            guard let e = xml.all(tag).first(where: { $0.attributes["state"] == id }) else {
                throw BasisError(file: path, field: "\(tag) state=\(id)", message: "missing")
            }
            let v = try DataFile.numbers(e.text, file: path, field: "\(tag) state=\(id)")
            guard v.count == n else { throw BasisError(file: path, field: "\(tag) state=\(id)", message: "\(v.count) values, grid has \(n)") }
            return v
        }
        let pt = try states.map { try table("projector_function", $0.id) }
        let phi = try states.map { try table("ae_partial_wave", $0.id) }
        let phit = try states.map { try table("pseudo_partial_wave", $0.id) }
        guard let vbarElement = xml.first("zero_potential") else {
            throw BasisError(file: path, field: "zero_potential", message: "missing")
        }
        let vbar = try DataFile.numbers(vbarElement.text, file: path, field: "zero_potential")

        func lastNonzeroPlusOne(_ f: [Double]) -> Int {
            var g = f.count - 1
            while g > 0 && f[g] == 0 { g -= 1 }
            return g + 1
        }
        let rcmax = states.map(\.rc).max() ?? 0
        var gcutFilter = version < 0.7 && generatorVersion < 2
            ? lastNonzeroPlusOne(pt[0]) : Int(r2g(rcmax).rounded(.up))
        if vbar.count > gcutFilter, vbar[gcutFilter...].contains(where: { $0 != 0 }) {
            gcutFilter = lastNonzeroPlusOne(vbar)
        }
        let rcutFilter = r[gcutFilter]

        // Projector splines: 25 bins, values by 3-point Lagrange interpolation of p̃/r^l.
        let points = 25
        var projectors: [RadialFunction] = []
        for (j, s) in states.enumerated() {
            let b = dividedByRPowerL(pt[j], l: s.l, r: r)
            var knots = [Double](repeating: 0, count: points + 1)
            for i in 0 ... points {
                let x = rcutFilter * Double(i) / Double(points)
                let g = min(max(Int(r2g(x) + 0.5), 1), n - 2)
                let r1 = r[g - 1], r2 = r[g], r3 = r[g + 1]
                let x1 = (x - r2) * (x - r3) / (r1 - r2) / (r1 - r3)
                let x2 = (x - r1) * (x - r3) / (r2 - r1) / (r2 - r3)
                let x3 = (x - r1) * (x - r2) / (r3 - r1) / (r3 - r2)
                knots[i] = b[g - 1] * x1 + b[g] * x2 + b[g + 1] * x3
            }
            projectors.append(RadialFunction(l: s.l, spline: UniformCubicSpline(cutoff: rcutFilter, values: knots)))
        }

        // ΔS_ij = δ_{li lj} δ_{mi mj} Σ_{g < gcut2} (φ_i φ_j − φ̃_i φ̃_j) r² dr, gcut2 = ⌈g(2 rc_max)⌉.
        let gcut2 = min(Int(r2g(2 * rcmax).rounded(.up)), n)
        let channels = states.reduce(0) { $0 + 2 * $1.l + 1 }
        var dS = [Double](repeating: 0, count: channels * channels)
        var offsets: [Int] = []
        var o = 0
        for s in states { offsets.append(o); o += 2 * s.l + 1 }
        for (i, si) in states.enumerated() {
            for (j, sj) in states.enumerated() where si.l == sj.l {
                var sum = 0.0
                for g in 0 ..< gcut2 { sum += (phi[i][g] * phi[j][g] - phit[i][g] * phit[j][g]) * r[g] * r[g] * dr[g] }
                for m in 0 ..< 2 * si.l + 1 { dS[(offsets[i] + m) * channels + offsets[j] + m] = sum }
            }
        }
        return (projectors, dS)
    }
}
