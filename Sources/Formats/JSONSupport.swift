// info.json in and out — the one place it is parsed and built. Parsing goes through
// StageAPI.JSONValue, which keeps key order and tells integers from floats and booleans; typed field
// access names the file and key in every error. Keys a format does not model travel as
// `DFTRecord.extraInfo` (file order, values untouched) and are written back after the modelled
// keys, with `pythonStyleString`, so files we write look like — and, for DeepH-dock's own files,
// are byte for byte — the ones DeepH tools write.
import Foundation
import StageAPI
import Structures

struct JSONFields {
    /// The top-level object, in file order.
    let pairs: [(String, JSONValue)]
    let file: String

    init(data: Data, file: String) throws {
        let parsed: JSONValue
        do { parsed = try JSONValue.parse(data) } catch {
            throw FormatError(file: file, message: "invalid JSON (\(error))")
        }
        guard let pairs = parsed.objectValue else {
            throw FormatError(file: file, message: "expected a JSON object at the top level, found \(parsed.typeDescription)")
        }
        self.pairs = pairs
        self.file = file
    }

    private func value(_ key: String) -> JSONValue? {
        guard let v = pairs.first(where: { $0.0 == key })?.1, v != .null else { return nil }
        return v
    }

    func isPresent(_ key: String) -> Bool { value(key) != nil }

    func double(_ key: String) throws -> Double? {
        guard let v = value(key) else { return nil }
        guard let d = v.doubleValue else {
            throw FormatError(file: file, field: key, message: "expected a number, found \(v.typeDescription)")
        }
        return d
    }

    func int(_ key: String) throws -> Int? {
        guard let v = value(key) else { return nil }
        if let i = v.intValue { return i }
        guard let d = v.doubleValue else {
            throw FormatError(file: file, field: key, message: "expected a number, found \(v.typeDescription)")
        }
        guard d == d.rounded(), abs(d) < 1e15 else {
            throw FormatError(file: file, field: key, message: "expected an integer, found \(d)")
        }
        return Int(d)
    }

    func bool(_ key: String) throws -> Bool? {
        guard let v = value(key) else { return nil }
        if let b = v.boolValue { return b }
        // Some writers store flags as 0/1.
        if let d = v.doubleValue, d == 0 || d == 1 { return d == 1 }
        throw FormatError(file: file, field: key, message: "expected true or false, found \(v.pythonStyleString)")
    }

    func object(_ key: String) throws -> [(String, JSONValue)]? {
        guard let v = value(key) else { return nil }
        guard let pairs = v.objectValue else {
            throw FormatError(file: file, field: key, message: "expected a JSON object, found \(v.typeDescription)")
        }
        return pairs
    }

    /// The keys not in `modelled`, in file order, values kept as they are (null included). The
    /// extras HarmoSE itself consumes are checked here, so a bad one fails at reading, naming the
    /// file, rather than later in a band calculation.
    func extras(excluding modelled: [String]) throws -> [DFTRecord.ExtraInfo] {
        let known = Set(modelled)
        var out: [DFTRecord.ExtraInfo] = []
        for (key, value) in pairs where !known.contains(key) {
            if key == InfoKeys.occupation, value != .null {
                guard let n = value.doubleValue, n >= 0 else {
                    throw FormatError(file: file, field: key, message: "expected the number of electrons per cell (≥ 0), found \(value.pythonStyleString)")
                }
            }
            out.append(DFTRecord.ExtraInfo(key: key, json: value.pythonStyleString))
        }
        return out
    }

    /// A format's modelled keys followed by the record's extras (those whose key the format itself
    /// writes are dropped: the modelled value wins), as the info.json text to write.
    static func infoText(_ modelled: [(String, JSONValue)], extras: [DFTRecord.ExtraInfo], file: String) throws -> String {
        var pairs = modelled
        var written = Set(modelled.map(\.0))
        for extra in extras where written.insert(extra.key).inserted {
            do { pairs.append((extra.key, try JSONValue.parse(extra.json))) } catch {
                throw FormatError(file: file, field: extra.key, message: "extra info.json value is not JSON text (\(error)): \(extra.json)")
            }
        }
        return JSONValue.object(pairs).pythonStyleString
    }
}

/// info.json keys that are not modelled by DFTRecord's own fields but that HarmoSE reads.
public enum InfoKeys {
    /// DeepH-dock: electrons per cell (both spins).
    public static let occupation = "occupation"
}

extension DFTRecord {
    /// An extra info.json value (see `extraInfo`), parsed; nil when absent or not valid JSON text.
    public func extraInfoValue(_ key: String) -> JSONValue? {
        guard let text = extraInfo.first(where: { $0.key == key })?.json else { return nil }
        return try? JSONValue.parse(text)
    }

    /// Electrons per cell from info.json `occupation` (checked to be a number ≥ 0 on reading), or
    /// nil when the file had none.
    public var electronCount: Double? { extraInfoValue(InfoKeys.occupation)?.doubleValue }
}
