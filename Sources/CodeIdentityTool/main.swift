// CodeIdentityTool: run at build time by Plugins/CodeIdentityPlugin. Hashes the source files of
// every module a target links and writes a Swift file with the digests (see
// Sources/StageAPI/CodeIdentity.swift for what they mean).
//
//   CodeIdentityTool <output.swift> <package root> (-m <module> (-d <dependency>)* (-f <file>)*)*
import Foundation
import StageAPI

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("CodeIdentityTool: \(message)\n".utf8))
    exit(1)
}

var args = Array(CommandLine.arguments.dropFirst())
guard args.count >= 2 else { fail("usage: CodeIdentityTool <output.swift> <package root> (-m module (-d dep)* (-f file)*)*") }
let output = URL(fileURLWithPath: args.removeFirst())
let root = URL(fileURLWithPath: args.removeFirst()).standardizedFileURL.path + "/"

var dependencies: [String: [String]] = [:]
var files: [String: [String]] = [:]
var current: String?
var i = 0
while i + 1 < args.count {
    let (flag, value) = (args[i], args[i + 1])
    i += 2
    switch flag {
    case "-m": current = value; dependencies[value] = dependencies[value] ?? []; files[value] = files[value] ?? []
    case "-d": guard let m = current else { fail("-d before -m") }; dependencies[m]!.append(value)
    case "-f":
        guard let m = current else { fail("-f before -m") }
        let path = URL(fileURLWithPath: value).standardizedFileURL.path
        guard path.hasPrefix(root) else { fail("\(path) is outside the package root \(root)") }
        files[m]!.append(String(path.dropFirst(root.count)))
    default: fail("unknown flag \(flag)")
    }
}
if i != args.count { fail("odd argument list") }

var own: [String: String] = [:]
for (module, list) in files {
    do {
        own[module] = CodeIdentity.moduleDigest(files: try list.map { ($0, try SHA256.hashFile(atPath: root + $0)) })
    } catch { fail("\(error)") }
}

func literal(_ s: String) -> String { "\"" + s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\"" }
func table(_ d: [String: String]) -> String {
    d.isEmpty ? "[:]" : "[\n" + d.sorted { $0.key < $1.key }.map { "        \(literal($0.key)): \(literal($0.value)),\n" }.joined() + "    ]"
}
func lists(_ d: [String: [String]]) -> String {
    d.isEmpty ? "[:]" : "[\n" + d.sorted { $0.key < $1.key }.map { "        \(literal($0.key)): [" + $0.value.sorted().map(literal).joined(separator: ", ") + "],\n" }.joined() + "    ]"
}
let text = """
// Generated at build time by Plugins/CodeIdentityPlugin (CodeIdentityTool); not in git, do not edit.
enum GeneratedCodeIdentities {
    /// Module → digest of its own source files (CodeIdentity.moduleDigest).
    static let own: [String: String] = \(table(own))
    /// Module → the modules of this package it links, directly or not.
    static let dependencies: [String: [String]] = \(lists(dependencies))
    /// Module → its files, relative to the package root.
    static let files: [String: [String]] = \(lists(files))
}

"""
do {
    if (try? String(contentsOf: output, encoding: .utf8)) != text {
        try Data(text.utf8).write(to: output, options: .atomic)
    }
} catch { fail("cannot write \(output.path): \(error)") }
