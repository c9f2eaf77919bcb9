// JSON in and out for info.json: typed field access whose errors name the file and key, and a
// writer that keeps key order and Python's `json.dump` spacing, so files we write look like the
// ones DeepH tools write.
import Foundation

struct JSONFields {
    let values: [String: Any]
    let file: String

    init(data: Data, file: String) throws {
        let parsed: Any
        do { parsed = try JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed]) } catch {
            throw FormatError(file: file, message: "invalid JSON (\(error.localizedDescription))")
        }
        guard let dict = parsed as? [String: Any] else {
            throw FormatError(file: file, message: "expected a JSON object at the top level")
        }
        values = dict
        self.file = file
    }

    init(values: [String: Any], file: String) { self.values = values; self.file = file }

    func isPresent(_ key: String) -> Bool {
        guard let v = values[key] else { return false }
        return !(v is NSNull)
    }

    private func number(_ key: String) throws -> NSNumber? {
        guard let v = values[key], !(v is NSNull) else { return nil }
        guard let n = v as? NSNumber, !isBoolean(n) else {
            throw FormatError(file: file, field: key, message: "expected a number, found \(v)")
        }
        return n
    }

    func double(_ key: String) throws -> Double? {
        guard let n = try number(key) else { return nil }
        let d = n.doubleValue
        guard d.isFinite else { throw FormatError(file: file, field: key, message: "not a finite number") }
        return d
    }

    func int(_ key: String) throws -> Int? {
        guard let n = try number(key) else { return nil }
        let d = n.doubleValue
        guard d == d.rounded(), abs(d) < 1e15 else {
            throw FormatError(file: file, field: key, message: "expected an integer, found \(n)")
        }
        return Int(d)
    }

    func bool(_ key: String) throws -> Bool? {
        guard let v = values[key], !(v is NSNull) else { return nil }
        if let n = v as? NSNumber {
            if isBoolean(n) { return n.boolValue }
            // Some writers store flags as 0/1.
            if n.doubleValue == 0 || n.doubleValue == 1 { return n.doubleValue == 1 }
        }
        throw FormatError(file: file, field: key, message: "expected true or false, found \(v)")
    }

    func object(_ key: String) throws -> [String: Any]? {
        guard let v = values[key], !(v is NSNull) else { return nil }
        guard let d = v as? [String: Any] else {
            throw FormatError(file: file, field: key, message: "expected a JSON object")
        }
        return d
    }

    /// JSON true/false arrive as NSNumber too; Foundation marks them with a distinct subclass.
    private func isBoolean(_ n: NSNumber) -> Bool {
        String(describing: type(of: n)).contains("Boolean")
    }
}

/// An ordered JSON value for writing.
indirect enum JSONValue {
    case int(Int)
    case double(Double)
    case bool(Bool)
    case null
    case string(String)
    case array([JSONValue])
    case object([(String, JSONValue)])

    /// Python `json.dumps` style: `{"a": 1, "b": [0, 1]}`.
    var text: String {
        switch self {
        case .int(let i): return String(i)
        case .double(let d): return d.isFinite ? "\(d)" : "null"
        case .bool(let b): return b ? "true" : "false"
        case .null: return "null"
        case .string(let s): return JSONValue.quote(s)
        case .array(let a): return "[" + a.map(\.text).joined(separator: ", ") + "]"
        case .object(let o): return "{" + o.map { "\(JSONValue.quote($0.0)): \($0.1.text)" }.joined(separator: ", ") + "}"
        }
    }

    static func quote(_ s: String) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            case "\r": out += "\\r"
            default:
                if u.value < 0x20 { out += String(format: "\\u%04x", u.value) } else { out.unicodeScalars.append(u) }
            }
        }
        return out + "\""
    }
}
