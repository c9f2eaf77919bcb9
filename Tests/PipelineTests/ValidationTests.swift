import Foundation
@testable import Pipeline
@testable import StageAPI
import TestSupport
import XCTest

final class ValidationTests: XCTestCase {
    /// Validates `json` in a project with data/ and returns the error text (failing if it is valid).
    func errorText(_ json: String, file: StaticString = #filePath, line: UInt = #line) throws -> String {
        let p = try Project(self)
        try p.setPipeline(json)
        do {
            _ = try p.load()
            XCTFail("expected a validation error", file: file, line: line)
            return ""
        } catch let error as PipelineError {
            let text = "\(error)"
            XCTAssertTrue(text.contains("pipeline.json"), "names the file: \(text)", file: file, line: line)
            return text
        }
    }

    func assertError(_ json: String, _ fragments: [String], file: StaticString = #filePath, line: UInt = #line) throws {
        let text = try errorText(json, file: file, line: line)
        for f in fragments { XCTAssertTrue(text.contains(f), "missing \"\(f)\" in: \(text)", file: file, line: line) }
    }

    func testValidPipelineNormalisesParameters() throws {
        let p = try Project(self)
        try p.setPipeline("""
        {"version": 1, "stages": {
          "a": {"kind": "test-scale", "inputs": {"source": ["data/set", "data/other.txt"], "extra": "data/other.txt"}},
          "b": {"kind": "test-concat", "inputs": {"parts": [{"stage": "a"}]}, "params": {"weights": [1, 2.5], "separator": "none"}}
        }}
        """)
        let spec = try p.load()
        XCTAssertEqual(spec.order, ["a", "b"])
        XCTAssertEqual(spec.stages["a"]!.parameters["factor"], .int(1))
        XCTAssertEqual(spec.stages["a"]!.inputs["source"], [.path("data/set"), .path("data/other.txt")])
        XCTAssertEqual(spec.stages["b"]!.parameters["weights"], .array([.double(1), .double(2.5)]), "integers given for numbers become doubles")
        XCTAssertEqual(spec.stages["b"]!.upstream, ["a"])
    }

    func testCycle() throws {
        try assertError("""
        {"stages": {
          "a": {"kind": "test-concat", "inputs": {"parts": [{"stage": "c"}]}},
          "b": {"kind": "test-concat", "inputs": {"parts": [{"stage": "a"}]}},
          "c": {"kind": "test-concat", "inputs": {"parts": [{"stage": "b"}]}},
          "d": {"kind": "test-scale", "inputs": {"source": "data/set"}}
        }}
        """, ["stages.a.inputs.parts", "dependency cycle: a ← c ← b ← a"])
        try assertError("""
        {"stages": {"a": {"kind": "test-concat", "inputs": {"parts": [{"stage": "a"}]}}}}
        """, ["stages.a.inputs.parts[0].stage", "cannot read its own output"])
    }

    func testUnknownKind() throws {
        try assertError(#"{"stages": {"ingest": {"kind": "test-scal", "inputs": {"source": "data/set"}}}}"#,
                        ["stages.ingest.kind", "unknown stage kind \"test-scal\"", "did you mean \"test-scale\""])
        try assertError(#"{"stages": {"x": {"kind": "frobnicate"}}}"#,
                        ["stages.x.kind", "known kinds: test-concat, test-scale"])
    }

    func testMissingInputs() throws {
        try assertError(#"{"stages": {"s": {"kind": "test-scale"}}}"#,
                        ["stages.s.inputs.source", "required input missing"])
        try assertError(#"{"stages": {"s": {"kind": "test-scale", "inputs": {"source": "data/nope"}}}}"#,
                        ["stages.s.inputs.source", "input path \"data/nope\" does not exist"])
        try assertError(#"{"stages": {"s": {"kind": "test-concat", "inputs": {"parts": [{"stage": "ghost"}]}}}}"#,
                        ["stages.s.inputs.parts[0].stage", "no stage named \"ghost\""])
        try assertError(#"{"stages": {"s": {"kind": "test-concat", "inputs": {"parts": "data/set"}}}}"#,
                        ["stages.s.inputs.parts", "expects another stage's output"])
        try assertError(#"""
        {"stages": {"s": {"kind": "test-scale", "inputs": {"source": "data/set"}},
                    "t": {"kind": "test-scale", "inputs": {"source": "data/set", "extra": {"stage": "s"}}}}}
        """#, ["stages.t.inputs.extra", "expects a file or directory path"])
    }

    func testWrongTypes() throws {
        try assertError(#"{"stages": {"s": {"kind": "test-scale", "inputs": {"source": "data/set"}, "params": {"factor": "3"}}}}"#,
                        ["stages.s.params.factor", "expected an integer, got a string \"3\""])
        try assertError(#"{"stages": {"s": {"kind": "test-scale", "inputs": {"source": "data/set"}, "params": {"factor": 2.5}}}}"#,
                        ["stages.s.params.factor", "expected an integer, got a number 2.5"])
        try assertError(#"{"stages": {"s": {"kind": "test-scale", "inputs": {"source": "data/set"}, "params": {"factor": -1}}}}"#,
                        ["stages.s.params.factor", "below the minimum 0"])
        try assertError(#"{"stages": {"s": {"kind": "test-scale", "inputs": {"source": "data/set"}, "params": {"fail": 1}}}}"#,
                        ["stages.s.params.fail", "expected a boolean, got an integer 1"])
        try assertError(#"""
        {"stages": {"s": {"kind": "test-scale", "inputs": {"source": "data/set"}},
                    "c": {"kind": "test-concat", "inputs": {"parts": [{"stage": "s"}]}, "params": {"weights": [1, "x"], "separator": "tab"}}}}
        """#, ["stages.c.params.weights[1]: expected a number, got a string \"x\"", "stages.c.params.separator: \"tab\" is not one of \"newline\", \"none\""])
        try assertError(#"{"stages": {"s": {"kind": "test-scale", "inputs": {"source": 5}}}}"#,
                        ["stages.s.inputs.source", "expected a path (string) or {\"stage\": name}, got an integer"])
        try assertError(#"{"stages": {"s": {"kind": "test-scale", "inputs": {"source": "data/set", "extra": ["data/other.txt"]}}}}"#,
                        ["stages.s.inputs.extra", "expects a single input"])
        try assertError(#"{"stages": {"s": {"kind": 3}}}"#, ["stages.s.kind", "expected a string, got an integer"])
        try assertError(#"{"stages": []}"#, ["stages", "expected an object mapping stage names"])
        try assertError(#"{"version": 2, "stages": {}}"#, ["version", "unsupported version 2"])
        try assertError(#"[1]"#, ["(top level)", "expected an object"])
    }

    func testUnknownKeys() throws {
        try assertError(#"{"stage": {}}"#, ["stage: unknown key (did you mean \"stages\"?)", "stages: required key missing"])
        try assertError(#"{"stages": {"s": {"kind": "test-scale", "input": {"source": "data/set"}}}}"#,
                        ["stages.s.input", "unknown key (did you mean \"inputs\"?)"])
        try assertError(#"{"stages": {"s": {"kind": "test-scale", "inputs": {"source": "data/set"}, "params": {"factr": 2}}}}"#,
                        ["stages.s.params.factr", "unknown parameter for kind 'test-scale' (did you mean \"factor\"?)"])
        try assertError(#"{"stages": {"s": {"kind": "test-scale", "inputs": {"source": "data/set", "sauce": "data/set"}}}}"#,
                        ["stages.s.inputs.sauce", "unknown input for kind 'test-scale'"])
        try assertError(#"""
        {"stages": {"s": {"kind": "test-scale", "inputs": {"source": "data/set"}},
                    "c": {"kind": "test-concat", "inputs": {"parts": [{"stage": "s", "latest": true}]}}}}
        """#, ["stages.c.inputs.parts[0].latest", "unknown key in stage reference"])
    }

    func testSeveralProblemsAreReportedTogether() throws {
        let text = try errorText(#"{"stages": {"a": {"kind": "test-scale"}, "b": {"kind": "nope"}, "bad name": {"kind": "test-scale", "inputs": {"source": "data/set"}}}}"#)
        XCTAssertTrue(text.contains("stages.a.inputs.source"), text)
        XCTAssertTrue(text.contains("stages.b.kind"), text)
        XCTAssertTrue(text.contains("stages.bad name: invalid stage name"), text)
    }

    func testKindOfUpstreamIsChecked() throws {
        let registry = try StageRegistry([ScaleKind(), ConcatKind(), RestrictedKind()])
        let p = try Project(self, registry: registry)
        try p.setPipeline(#"""
        {"stages": {"s": {"kind": "test-scale", "inputs": {"source": "data/set"}},
                    "r": {"kind": "test-restricted", "inputs": {"input": {"stage": "s"}}}}}
        """#)
        XCTAssertThrowsError(try p.load()) { error in
            XCTAssertTrue("\(error)".contains("stages.r.inputs.input.stage: stage \"s\" is of kind 'test-scale', but this input takes the output of 'test-concat'"), "\(error)")
        }
    }

    func testSyntaxErrorsNameFileLineAndColumn() throws {
        let text = try errorText("{\n  \"stages\": {\n    \"a\": {\"kind\": \"test-scale\",}\n  }\n}\n")
        XCTAssertTrue(text.hasSuffix("pipeline.json:3:32: invalid JSON: expected a string key in object"), text)
    }

    func testMissingPipelineFile() throws {
        let dir = try makeTemporaryDirectory(self)
        XCTAssertThrowsError(try PipelineSpec.load(from: dir.appendingPathComponent("pipeline.json"), registry: testRegistry())) { error in
            XCTAssertEqual("\(error)", "\(dir.path)/pipeline.json: cannot read pipeline: no such file")
        }
    }

    func testRegistryRejectsDuplicatesAndBadNames() {
        XCTAssertThrowsError(try StageRegistry([ScaleKind(), ScaleKind()])) { error in
            XCTAssertEqual(error as? PipelineError, .duplicateKind("test-scale"))
        }
        XCTAssertThrowsError(try StageRegistry([BadNameKind()]))
    }
}

struct RestrictedKind: StageKind {
    let name = "test-restricted"
    let summary = "takes only test-concat output"
    let artifactVersion = 1
    let parameters: [ParameterSpec] = []
    let inputs = [InputSpec("input", .stage(kinds: ["test-concat"]), help: "a concatenation")]
    func run(_ context: StageContext) throws -> [String: JSONValue] { [:] }
}

struct BadNameKind: StageKind {
    let name = "bad name"
    let summary = ""
    let artifactVersion = 1
    let parameters: [ParameterSpec] = []
    let inputs: [InputSpec] = []
    func run(_ context: StageContext) throws -> [String: JSONValue] { [:] }
}
