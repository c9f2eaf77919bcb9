// Names that come from outside (archive members, structure names derived from them) become paths
// under a destination folder. This file owns the one rule that decides whether such a name may:
// it is normalised (`.` and empty components dropped) and refused when it could leave the
// destination or confuse it — `..`, absolute paths, drive letters, backslashes, NUL and other
// control characters, invalid UTF-8, overlong names. `confined(_:in:)` is the only way writers
// turn such a name into a URL, so a name that slipped past a reader still cannot escape.
import Foundation

public enum MemberPath {
    /// Longest path component, in UTF-8 bytes (NAME_MAX on Linux and macOS).
    public static let maxComponentBytes = 255
    /// Longest whole name, in UTF-8 bytes (leaves room under PATH_MAX = 4096 for the destination).
    public static let maxNameBytes = 1024
    /// Most components in one name.
    public static let maxDepth = 32

    /// Why a name is refused; `description` is the reason users read.
    public struct Refusal: Error, Equatable, CustomStringConvertible {
        public var description: String
    }

    /// The normalised relative path of raw name bytes, or why it is refused. `hiddenAllowed`
    /// false also refuses components that start with "." (structure folder names: hidden names
    /// are where HarmoSE keeps its temporary folders, and folder datasets skip them).
    public static func normalize(bytes: [UInt8], hiddenAllowed: Bool = true) -> Result<String, Refusal> {
        if bytes.contains(0) { return .failure(Refusal(description: "contains a NUL byte")) }
        guard let text = String(validating: bytes, as: UTF8.self) else {
            return .failure(Refusal(description: "is not valid UTF-8"))
        }
        return normalize(text, hiddenAllowed: hiddenAllowed)
    }

    /// The normalised relative path of `name`, or why it is refused.
    public static func normalize(_ name: String, hiddenAllowed: Bool = true) -> Result<String, Refusal> {
        func refuse(_ why: String) -> Result<String, Refusal> { .failure(Refusal(description: why)) }
        let byteCount = name.utf8.count
        if byteCount == 0 { return refuse("is empty") }
        if byteCount > maxNameBytes { return refuse("is \(byteCount) bytes long, over the limit of \(maxNameBytes) bytes") }
        if name.utf8.contains(0) { return refuse("contains a NUL byte") }
        if let c = name.unicodeScalars.first(where: { $0.value < 0x20 || $0.value == 0x7F }) {
            return refuse("contains the control character U+\(String(format: "%04X", c.value))")
        }
        if name.hasPrefix("/") { return refuse("is an absolute path (names must stay inside the destination)") }
        if name.contains("\\") { return refuse("contains a backslash (a Windows separator: ambiguous, refused)") }
        let raw = name.split(separator: "/", omittingEmptySubsequences: true)
        if let first = raw.first, first.count >= 2, first.dropFirst().first == ":",
           first.first.map({ $0.isASCII && $0.isLetter }) == true {
            return refuse("starts with a drive letter (\(first.prefix(2))): names must stay inside the destination")
        }
        var parts: [Substring] = []
        for part in raw where part != "." {
            if part == ".." { return refuse("has a '..' component (would leave the destination)") }
            if part.utf8.count > maxComponentBytes {
                return refuse("has a component of \(part.utf8.count) bytes, over the limit of \(maxComponentBytes) bytes")
            }
            if !hiddenAllowed, part.hasPrefix(".") {
                return refuse("has a hidden component '\(part)' (names starting with '.' are reserved for temporary folders)")
            }
            parts.append(part)
        }
        if parts.isEmpty { return refuse("names no file or folder (only '.' and '/')") }
        if parts.count > maxDepth { return refuse("is \(parts.count) folders deep, over the limit of \(maxDepth)") }
        return .success(parts.joined(separator: "/"))
    }

    /// The key two names collide under on case-insensitive or normalising file systems (macOS,
    /// Windows): Unicode canonical composition, then case folding.
    public static func collisionKey(_ name: String) -> String {
        name.precomposedStringWithCanonicalMapping.lowercased()
    }

    /// `root`/`relative` after checking `relative` with `normalize` (hidden components refused);
    /// throws a FormatError naming `source` (where the name came from) and the name.
    public static func confined(_ relative: String, in root: URL, source: String) throws -> URL {
        switch normalize(relative, hiddenAllowed: false) {
        case .failure(let refusal):
            throw FormatError(file: source, field: "name \(quoted(relative))", message: "refused: the name \(refusal)")
        case .success(let clean):
            let url = root.appendingPathComponent(clean)
            // Belt and braces: the standardised result must still lie under root.
            let base = root.standardizedFileURL.path
            let path = url.standardizedFileURL.path
            guard path.hasPrefix(base.hasSuffix("/") ? base : base + "/") else {
                throw FormatError(file: source, field: "name \(quoted(relative))", message: "refused: resolves outside the destination \(root.path)")
            }
            return url
        }
    }

    /// A name as messages print it: JSON-style quoting, control characters escaped, long names cut.
    public static func quoted(_ name: String) -> String {
        var out = "\""
        for s in name.unicodeScalars.prefix(200) {
            switch s {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case _ where s.value < 0x20 || s.value == 0x7F: out += String(format: "\\u%04X", s.value)
            default: out.unicodeScalars.append(s)
            }
        }
        if name.unicodeScalars.count > 200 { out += "…" }
        return out + "\""
    }
}
