// The CLI's last word on a failure: every error a command throws is printed through the one
// formatter (`ErrorText.describe`: file, field, reason — Foundation's raw
// `Error Domain=NSCocoaErrorDomain …` never reaches users), with a non-zero exit.
// ArgumentParser's own errors (usage, --help, exit codes) pass through untouched.
import ArgumentParser
import Foundation
import StageAPI

/// An error already formatted for users.
struct ReportedError: Error, CustomStringConvertible {
    var description: String
}

extension HarmoSECommand {
    /// `main()` with errors formatted by `ErrorText`.
    public static func mainReportingErrors(_ arguments: [String]? = nil) -> Never {
        do {
            var command = try parseAsRoot(joiningNegativeNumbers(arguments ?? Array(CommandLine.arguments.dropFirst())))
            try command.run()
            Foundation.exit(0)
        } catch {
            exit(withError: forCommandLine(error))
        }
    }

    /// `--option -1` as `--option=-1`: ArgumentParser would read "-1" as a short option, so a
    /// negative value (`--sigma -1`) got "unknown option" instead of the option's own range check.
    public static func joiningNegativeNumbers(_ arguments: [String]) -> [String] {
        var out: [String] = []
        var k = 0
        while k < arguments.count {
            let a = arguments[k]
            if a.hasPrefix("--"), a.count > 2, !a.contains("="), k + 1 < arguments.count, looksNegativeNumber(arguments[k + 1]) {
                out.append("\(a)=\(arguments[k + 1])")
                k += 2
            } else {
                out.append(a)
                k += 1
            }
        }
        return out
    }

    static func looksNegativeNumber(_ s: String) -> Bool {
        guard s.hasPrefix("-"), s.count > 1 else { return false }
        let body = s.dropFirst()
        if ["inf", "infinity", "nan"].contains(body.lowercased()) { return true }
        return Double(body) != nil && (body.first?.isNumber == true || body.first == ".")
    }

    /// ArgumentParser's errors as they are; anything else through `ErrorText`.
    static func forCommandLine(_ error: Error) -> Error {
        if error is ExitCode || error is CleanExit || error is ValidationError || error is ReportedError { return error }
        if String(reflecting: type(of: error)).hasPrefix("ArgumentParser.") { return error }
        return ReportedError(description: ErrorText.describe(error))
    }
}
