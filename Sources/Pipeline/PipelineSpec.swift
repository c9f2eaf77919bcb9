// pipeline.json: parsing and validation against the registered stage kinds. Validation reports every
// problem it finds, each naming the file and the JSON path of the field, before anything runs.
// The schema is documented in docs/pipeline.md.
import Foundation
import StageAPI

/// Where a stage input comes from.
public enum InputReference: Equatable, Sendable, CustomStringConvertible {
    /// A file or directory; the string is as written in pipeline.json (relative to its folder).
    case path(String)
    /// Another stage's artifact directory.
    case stage(String)

    public var description: String {
        switch self {
        case let .path(p): return p
        case let .stage(s): return "stage '\(s)'"
        }
    }
}

/// One validated stage of a pipeline.
public struct StageSpec: Sendable {
    public let name: String
    public let kind: any StageKind
    /// The code that computes this stage's kind (nil for kinds registered without one).
    public let codeIdentity: CodeIdentity?
    public let parameters: StageParameters
    /// Input name → references, in the order given. Optional inputs not given are absent.
    public let inputs: [String: [InputReference]]
    public let description: String?

    /// Names of the stages this one reads, sorted, without duplicates.
    public var upstream: [String] {
        Array(Set(inputs.values.flatMap { $0 }.compactMap { ref -> String? in
            if case let .stage(s) = ref { return s }
            return nil
        })).sorted()
    }
}

/// A validated pipeline: stages and a deterministic topological order.
public struct PipelineSpec: Sendable {
    /// The pipeline file (for messages) and the folder relative paths are resolved against.
    public let file: URL
    public let baseDirectory: URL
    public let stages: [String: StageSpec]
    /// Every stage after all of its inputs; ties broken by order in the file.
    public let order: [String]

    public static let currentVersion = 1

    public static func load(from file: URL, registry: StageRegistry) throws -> PipelineSpec {
        let data: Data
        do { data = try Data(contentsOf: file) } catch {
            let reason = FileManager.default.fileExists(atPath: file.path) ? ErrorText.reason(of: error) : "no such file"
            throw PipelineError.unreadablePipeline(file: file.path, reason: reason)
        }
        return try parse(data, file: file, registry: registry)
    }

    public static func parse(_ data: Data, file: URL, baseDirectory: URL? = nil, registry: StageRegistry) throws -> PipelineSpec {
        let json: JSONValue
        do { json = try JSONValue.parse(data) } catch let e as JSONSyntaxError {
            throw PipelineError.syntax(file: file.path, e)
        }
        var validator = Validator(file: file.path, base: baseDirectory ?? file.deletingLastPathComponent(), registry: registry)
        return try validator.validate(json, file: file)
    }

    /// The stages `name` depends on, directly or not (not including itself).
    public func ancestors(of name: String) -> Set<String> {
        var seen = Set<String>()
        var stack = stages[name]?.upstream ?? []
        while let s = stack.popLast() {
            if seen.insert(s).inserted { stack += stages[s]?.upstream ?? [] }
        }
        return seen
    }

    /// The stages that depend on `name`, directly or not (not including itself).
    public func descendants(of name: String) -> Set<String> {
        var seen = Set<String>()
        var frontier = [name]
        while let s = frontier.popLast() {
            for (other, spec) in stages where spec.upstream.contains(s) && !seen.contains(other) {
                seen.insert(other)
                frontier.append(other)
            }
        }
        return seen
    }

    /// Absolute location of a path input.
    public func resolve(path: String) -> URL {
        path.hasPrefix("/") ? URL(fileURLWithPath: path) : baseDirectory.appendingPathComponent(path)
    }
}

private struct Validator {
    let file: String
    let base: URL
    let registry: StageRegistry
    var issues: [PipelineError] = []

    init(file: String, base: URL, registry: StageRegistry) {
        self.file = file
        self.base = base
        self.registry = registry
    }

    mutating func issue(_ path: String, _ message: String) {
        issues.append(.invalid(file: file, path: path, message: message))
    }

    mutating func validate(_ json: JSONValue, file url: URL) throws -> PipelineSpec {
        guard case let .object(top) = json else {
            throw PipelineError.invalid(file: file, path: "(top level)", message: "expected an object with \"stages\", got \(json.typeDescription)")
        }
        var stageObjects: [(String, JSONValue)] = []
        var sawStages = false
        for (key, value) in top {
            switch key {
            case "version":
                if value.intValue != PipelineSpec.currentVersion {
                    issue("version", "unsupported version \(value.canonicalString) (this HarmoSE reads version \(PipelineSpec.currentVersion))")
                }
            case "description":
                if value.stringValue == nil { issue("description", "expected a string, got \(value.typeDescription)") }
            case "stages":
                sawStages = true
                if let pairs = value.objectValue { stageObjects = pairs } else {
                    issue("stages", "expected an object mapping stage names to stages, got \(value.typeDescription)")
                }
            default:
                issue(key, "unknown key \(suggestion(key, among: ["version", "description", "stages"]))")
            }
        }
        if !sawStages { issue("stages", "required key missing") }

        let stageNames = Set(stageObjects.map(\.0))
        var stages: [String: StageSpec] = [:]
        for (name, value) in stageObjects {
            if let spec = validateStage(name: name, value, allStages: stageNames, stageObjects: stageObjects) {
                stages[name] = spec
            }
        }
        if issues.isEmpty, stageObjects.isEmpty { issue("stages", "no stages defined") }
        if issues.isEmpty { return PipelineSpec(file: url, baseDirectory: base, stages: stages, order: try order(stages, objects: stageObjects)) }
        throw issues.count == 1 ? issues[0] : PipelineError.several(issues)
    }

    mutating func validateStage(name: String, _ value: JSONValue, allStages: Set<String>, stageObjects: [(String, JSONValue)]) -> StageSpec? {
        let path = "stages.\(name)"
        let validName = !name.isEmpty && name != "latest"
            && name.first!.isASCII && (name.first!.isLetter || name.first!.isNumber)
            && name.allSatisfy { ($0.isASCII && ($0.isLetter || $0.isNumber)) || $0 == "-" || $0 == "_" || $0 == "." }
        if !validName {
            issue(path, "invalid stage name (use ASCII letters, digits, '-', '_', '.', starting with a letter or digit; it becomes a folder under outputs/)")
        }
        guard case let .object(fields) = value else {
            issue(path, "expected an object with \"kind\", got \(value.typeDescription)")
            return nil
        }
        var kindName: String?
        var params: [(String, JSONValue)] = []
        var inputs: [(String, JSONValue)] = []
        var description: String?
        for (key, v) in fields {
            switch key {
            case "kind":
                if let s = v.stringValue { kindName = s } else { issue("\(path).kind", "expected a string, got \(v.typeDescription)") }
            case "params":
                if let o = v.objectValue { params = o } else { issue("\(path).params", "expected an object, got \(v.typeDescription)") }
            case "inputs":
                if let o = v.objectValue { inputs = o } else { issue("\(path).inputs", "expected an object, got \(v.typeDescription)") }
            case "description":
                if let s = v.stringValue { description = s } else { issue("\(path).description", "expected a string, got \(v.typeDescription)") }
            default:
                issue("\(path).\(key)", "unknown key \(suggestion(key, among: ["kind", "params", "inputs", "description"]))")
            }
        }
        guard let kindName else {
            if fields.first(where: { $0.0 == "kind" }) == nil { issue("\(path).kind", "required key missing") }
            return nil
        }
        guard let kind = registry.kind(named: kindName) else {
            issue("\(path).kind", "unknown stage kind \"\(kindName)\" \(suggestion(kindName, among: registry.names, noun: "known kinds"))")
            return nil
        }
        let before = issues.count
        let parameters = validateParameters(params, kind: kind, path: "\(path).params")
        let resolved = validateInputs(inputs, kind: kind, stage: name, path: "\(path).inputs", allStages: allStages, stageObjects: stageObjects)
        guard issues.count == before else { return nil }
        return StageSpec(name: name, kind: kind, codeIdentity: registry.codeIdentities[kindName], parameters: parameters,
                         inputs: resolved, description: description)
    }

    mutating func validateParameters(_ given: [(String, JSONValue)], kind: any StageKind, path: String) -> StageParameters {
        var values: [String: JSONValue] = [:]
        let specs = Dictionary(kind.parameters.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        for (key, value) in given {
            guard let spec = specs[key] else {
                issue("\(path).\(key)", "unknown parameter for kind '\(kind.name)' \(suggestion(key, among: kind.parameters.map(\.name), noun: "its parameters"))")
                continue
            }
            if let normalised = check(value, spec.type, spec: spec, path: "\(path).\(key)") { values[key] = normalised }
        }
        for spec in kind.parameters where values[spec.name] == nil && given.first(where: { $0.0 == spec.name }) == nil {
            if let d = spec.defaultValue {
                values[spec.name] = check(d, spec.type, spec: spec, path: "(default of \(kind.name).\(spec.name))") ?? d
            } else {
                issue("\(path).\(spec.name)", "required parameter missing (\(spec.type): \(spec.help))")
            }
        }
        return StageParameters(values)
    }

    /// Returns the normalised value, or nil after recording an issue.
    mutating func check(_ value: JSONValue, _ type: ParameterType, spec: ParameterSpec, path: String) -> JSONValue? {
        func bounded(_ x: Double) -> Bool {
            if let lo = spec.minimum, x < lo { issue(path, "\(JSONValue.format(x)) is below the minimum \(JSONValue.format(lo))"); return false }
            if let hi = spec.maximum, x > hi { issue(path, "\(JSONValue.format(x)) is above the maximum \(JSONValue.format(hi))"); return false }
            return true
        }
        switch type {
        case .integer:
            guard case let .int(i) = value else { break }
            return bounded(Double(i)) ? value : nil
        case .number:
            guard let d = value.doubleValue else { break }
            return bounded(d) ? .double(d) : nil
        case .boolean:
            if case .bool = value { return value }
        case .string:
            if case .string = value { return value }
        case let .choice(options):
            guard case let .string(s) = value else { break }
            if options.contains(s) { return value }
            issue(path, "\"\(s)\" is not one of " + options.map { "\"\($0)\"" }.joined(separator: ", "))
            return nil
        case let .array(element):
            guard case let .array(items) = value else { break }
            var out: [JSONValue] = []
            var ok = true
            for (n, item) in items.enumerated() {
                if let v = check(item, element, spec: spec, path: "\(path)[\(n)]") { out.append(v) } else { ok = false }
            }
            return ok ? .array(out) : nil
        }
        issue(path, "expected \(article(type)), got \(value.typeDescription) \(value.canonicalString)")
        return nil
    }

    func article(_ type: ParameterType) -> String {
        switch type {
        case .integer: return "an integer"
        case .array: return "an \(type)"
        case .choice: return "a string (\(type))"
        default: return "a \(type)"
        }
    }

    mutating func validateInputs(_ given: [(String, JSONValue)], kind: any StageKind, stage: String, path: String,
                                 allStages: Set<String>, stageObjects: [(String, JSONValue)]) -> [String: [InputReference]]
    {
        var out: [String: [InputReference]] = [:]
        let specs = Dictionary(kind.inputs.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        for (key, value) in given {
            let p = "\(path).\(key)"
            guard let spec = specs[key] else {
                issue(p, "unknown input for kind '\(kind.name)' \(suggestion(key, among: kind.inputs.map(\.name), noun: "its inputs"))")
                continue
            }
            var refs: [(JSONValue, String)] = []
            if case let .array(items) = value {
                guard spec.multiple else {
                    issue(p, "expects a single input (a path string or {\"stage\": name}), got an array")
                    continue
                }
                if items.isEmpty { issue(p, "empty list of inputs") }
                refs = items.enumerated().map { ($0.element, "\(p)[\($0.offset)]") }
            } else {
                refs = [(value, p)]
            }
            var resolved: [InputReference] = []
            for (item, itemPath) in refs {
                if let r = reference(item, spec: spec, stage: stage, path: itemPath, allStages: allStages, stageObjects: stageObjects) {
                    resolved.append(r)
                }
            }
            out[key] = resolved
        }
        for spec in kind.inputs where spec.required && given.first(where: { $0.0 == spec.name }) == nil {
            issue("\(path).\(spec.name)", "required input missing (\(spec.help))")
        }
        return out
    }

    mutating func reference(_ value: JSONValue, spec: InputSpec, stage: String, path: String,
                            allStages: Set<String>, stageObjects: [(String, JSONValue)]) -> InputReference?
    {
        switch value {
        case let .string(p):
            if case .stage = spec.source {
                issue(path, "expects another stage's output, written {\"stage\": \"name\"}, not a path")
                return nil
            }
            if p.isEmpty { issue(path, "empty path"); return nil }
            let url = p.hasPrefix("/") ? URL(fileURLWithPath: p) : base.appendingPathComponent(p)
            if !FileManager.default.fileExists(atPath: url.path) {
                issue(path, "input path \"\(p)\" does not exist (looked for \(url.path))")
                return nil
            }
            return .path(p)
        case let .object(fields):
            if spec.source == .path {
                issue(path, "expects a file or directory path (a string), not a stage reference")
                return nil
            }
            guard fields.count == 1, fields[0].0 == "stage" else {
                let extra = fields.first { $0.0 != "stage" }?.0
                issue(extra.map { "\(path).\($0)" } ?? path, extra != nil ? "unknown key in stage reference (only \"stage\" is allowed)" : "a stage reference is {\"stage\": \"name\"}")
                return nil
            }
            guard let upstream = fields[0].1.stringValue else {
                issue("\(path).stage", "expected a stage name (string), got \(fields[0].1.typeDescription)")
                return nil
            }
            if upstream == stage { issue("\(path).stage", "stage '\(stage)' cannot read its own output"); return nil }
            guard allStages.contains(upstream) else {
                issue("\(path).stage", "no stage named \"\(upstream)\" in this pipeline \(suggestion(upstream, among: allStages.sorted(), noun: "stages"))")
                return nil
            }
            if let kinds = spec.source.stageKinds, !kinds.isEmpty,
               let upstreamKind = stageObjects.first(where: { $0.0 == upstream })?.1["kind"]?.stringValue,
               !kinds.contains(upstreamKind)
            {
                issue("\(path).stage", "stage \"\(upstream)\" is of kind '\(upstreamKind)', but this input takes the output of " + kinds.map { "'\($0)'" }.joined(separator: " or "))
                return nil
            }
            return .stage(upstream)
        default:
            issue(path, "expected a path (string) or {\"stage\": name}, got \(value.typeDescription)")
            return nil
        }
    }

    /// Kahn's algorithm, ties broken by position in the file; a leftover set means a cycle,
    /// reported along one of its loops.
    func order(_ stages: [String: StageSpec], objects: [(String, JSONValue)]) throws -> [String] {
        var remaining = Dictionary(uniqueKeysWithValues: stages.map { ($0.key, Set($0.value.upstream)) })
        let position = Dictionary(objects.enumerated().map { ($0.element.0, $0.offset) }, uniquingKeysWith: { a, _ in a })
        var result: [String] = []
        while true {
            let ready = remaining.filter { $0.value.isEmpty }.map(\.key).sorted { position[$0, default: 0] < position[$1, default: 0] }
            if ready.isEmpty { break }
            for r in ready {
                result.append(r)
                remaining[r] = nil
            }
            for key in remaining.keys { remaining[key]!.subtract(ready) }
        }
        guard !remaining.isEmpty else { return result }
        // Walk upstream edges from the first stuck stage until a stage repeats: that is a cycle.
        var walk: [String] = [remaining.keys.sorted()[0]]
        while true {
            let next = remaining[walk.last!]!.sorted()[0]
            if let start = walk.firstIndex(of: next) {
                let loop = Array(walk[start...]) + [next]
                let head = loop[0], into = loop[1]
                let slot = stages[head]!.inputs.first { $0.value.contains(.stage(into)) }?.key ?? "?"
                throw PipelineError.invalid(file: file, path: "stages.\(head).inputs.\(slot)",
                                            message: "dependency cycle: " + loop.joined(separator: " ← ") + " (each stage reads the next one's output)")
            }
            walk.append(next)
        }
    }
}

/// "(did you mean \"x\"?)" when a close match exists, otherwise the list of valid names.
func suggestion(_ word: String, among candidates: [String], noun: String = "allowed") -> String {
    let scored = candidates.map { ($0, editDistance(word.lowercased(), $0.lowercased())) }.sorted { $0.1 < $1.1 }
    if let best = scored.first, best.1 <= max(1, word.count / 3) { return "(did you mean \"\(best.0)\"?)" }
    if candidates.isEmpty { return "(\(noun): none)" }
    return "(\(noun): " + candidates.joined(separator: ", ") + ")"
}

func editDistance(_ a: String, _ b: String) -> Int {
    let a = Array(a), b = Array(b)
    if a.isEmpty { return b.count }
    var previous = Array(0 ... b.count)
    for i in 1 ... a.count {
        var current = [i] + Array(repeating: 0, count: b.count)
        for j in stride(from: 1, through: b.count, by: 1) {
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
        }
        previous = current
    }
    return previous[b.count]
}

/// All stage kinds known to this process, by name, each with the identity of the code that computes
/// it (part of its stages' fingerprints).
public struct StageRegistry: Sendable {
    public private(set) var kinds: [String: any StageKind] = [:]
    /// Kind name → code identity. A kind without one (kinds defined by tests) is fingerprinted
    /// without code; HarmoSECLI gives every production kind one (StageKinds.codeIdentity(of:)).
    public private(set) var codeIdentities: [String: CodeIdentity] = [:]

    public init() {}

    public init(_ kinds: [any StageKind], codeIdentity: (any StageKind) -> CodeIdentity? = { _ in nil }) throws {
        for kind in kinds { try register(kind, codeIdentity: codeIdentity(kind)) }
    }

    public mutating func register(_ kind: any StageKind, codeIdentity: CodeIdentity? = nil) throws {
        guard kinds[kind.name] == nil else { throw PipelineError.duplicateKind(kind.name) }
        guard !kind.name.isEmpty, kind.name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" }) else {
            throw PipelineError.invalidKindName(kind.name)
        }
        kinds[kind.name] = kind
        codeIdentities[kind.name] = codeIdentity
    }

    public func kind(named name: String) -> (any StageKind)? { kinds[name] }

    public var names: [String] { kinds.keys.sorted() }
}
