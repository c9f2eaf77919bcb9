// JSON in for info.json: typed field access whose errors name the file and key. Writing uses
// Pipeline.JSONValue's `pythonStyleString`, so files we write look like the ones DeepH tools write.
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
