// Harness for the ABACUS reader (STRU, INPUT, running_scf.log, data-HR/SR-sparse CSR) through its
// in-memory entry point. Seeds: the MoS2 run of Tests/Fixtures/abacus/MoS2.tar.xz with the CSR
// files cut to the R = 0 block (and to R = 0 plus the first image) and, in it, to the entries next
// to the diagonal, so an input stays a few kB and a run takes a fraction of a millisecond; the log
// is cut to the lines the reader reads.
import Formats
import Foundation

enum AbacusSeeds {
    static let names = ["STRU", "INPUT", "OUT.ABACUS/running_scf.log",
                        "OUT.ABACUS/data-HR-sparse_SPIN0.csr", "OUT.ABACUS/data-SR-sparse_SPIN0.csr"]

    /// An ABACUS CSR file (3 header lines, then per image a line "Rx Ry Rz nnz" followed, when
    /// nnz > 0, by its values, columns and row pointers) keeping only the non-empty images `keep`
    /// selects (given their index among the non-empty ones), with the image count rewritten.
    static func cut(_ csr: [UInt8], keep: (Int, [Substring]) -> Bool) -> [UInt8] {
        let lines = String(decoding: csr, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
        guard lines.count > 3 else { return csr }
        var blocks: [String] = [], index = 0, i = 3
        while i < lines.count {
            let head = lines[i].split(separator: " ")
            guard head.count == 4, head[3] != "0", i + 3 < lines.count else { i += 1; continue }
            if keep(index, head) { blocks.append(lines[i ... i + 3].joined(separator: "\n")) }
            index += 1; i += 4
        }
        let header = [String(lines[0]), String(lines[1]),
                      lines[2].replacingOccurrences(of: #"\d+$"#, with: "\(blocks.count)", options: .regularExpression)]
        return Array((header + blocks).joined(separator: "\n").appending("\n").utf8)
    }

    /// An ABACUS CSR file keeping, in every image, only the entries within `width` of the diagonal
    /// (|row − column| ≤ width): every atom's on-site block and its neighbours' couplings keep real
    /// values, in 1/20 of the text (the fuzzer's cost is per byte of CSR text). Images left empty
    /// are dropped and the image count rewritten.
    static func band(_ csr: [UInt8], width: Int) -> [UInt8] {
        let lines = String(decoding: csr, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
        guard lines.count > 3 else { return csr }
        var blocks: [String] = [], i = 3
        while i < lines.count {
            let head = lines[i].split(separator: " ")
            guard head.count == 4, head[3] != "0", i + 3 < lines.count else { i += 1; continue }
            let values = lines[i + 1].split(separator: " "), columns = lines[i + 2].split(separator: " ")
            let starts = lines[i + 3].split(separator: " ").compactMap { Int($0) }
            var kept: [(Substring, Substring)] = [], rows = [0]
            for row in 0 ..< max(starts.count - 1, 0) {
                for k in starts[row] ..< min(starts[row + 1], values.count, columns.count) {
                    if let c = Int(columns[k]), abs(c - row) <= width { kept.append((values[k], columns[k])) }
                }
                rows.append(kept.count)
            }
            if !kept.isEmpty {
                blocks.append(["\(head[0]) \(head[1]) \(head[2]) \(kept.count)",
                               kept.map { String($0.0) }.joined(separator: " "),
                               kept.map { String($0.1) }.joined(separator: " "),
                               rows.map(String.init).joined(separator: " ")].joined(separator: "\n"))
            }
            i += 4
        }
        let header = [String(lines[0]), String(lines[1]),
                      lines[2].replacingOccurrences(of: #"\d+$"#, with: "\(blocks.count)", options: .regularExpression)]
        return Array((header + blocks).joined(separator: "\n").appending("\n").utf8)
    }

    /// running_scf.log cut to the lines `RunLog.parse` reads (53 kB → 1 kB): the fuzzer's time
    /// goes into the parser's branches, not into copying and scanning unread text.
    static func readLines(_ log: [UInt8]) -> [UInt8] {
        let keys = ["READING ATOM TYPE", "atom label =", "L=", "number of atom for this type =", "nspin =", "NLOCAL =", "EFERMI ="]
        let lines = String(decoding: log, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).filter { line in
            let t = line.trimmingCharacters(in: .whitespaces)
            return keys.contains { t.hasPrefix($0) } || t.contains("number of electrons")
        }
        return Array((lines.joined(separator: "\n") + "\n").utf8)
    }

    static func seeds() throws -> [[UInt8]] {
        var files = try names.map { try Members.fromTar("abacus/MoS2.tar.xz", "MoS2/\($0)") }
        files[2] = readLines(files[2])
        let origin: (Int, [Substring]) -> Bool = { _, h in h.count == 4 && h[0] == "0" && h[1] == "0" && h[2] == "0" }
        let originAndFirst: (Int, [Substring]) -> Bool = { k, h in k == 0 || origin(k, h) }
        return [origin, originAndFirst].map { keep in
            Members.join(files.enumerated().map { k, f in k >= 3 ? band(cut(f, keep: keep), width: 1) : f })
        }
    }
}

extension Harnesses {
    static let abacus = Harness(
        name: "abacus", summary: "ABACUS run folder (STRU, INPUT, running_scf.log, H(R)/S(R) CSR) read from memory",
        seeds: AbacusSeeds.seeds
    ) { bytes in
        _ = try ABACUS.read(members: Members.split(bytes, names: AbacusSeeds.names), name: "fuzz")
    }
}
