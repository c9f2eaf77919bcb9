// Which basis a structure uses, from its own info.json (documented in docs/basis.md):
//   `basis`  — required: a bundled or GPAW basis name ("def2-svp", "dzp", …) or a path (relative to
//              the structure folder) to an NWChem-format Gaussian basis file;
//   `code`   — "gpaw…" selects GPAW numerical orbitals + PAW setups; anything else (e.g. "pyscf")
//              or no `code` selects a Gaussian basis;
//   `xc`     — GPAW setup flavour (default "PBE"); `setups` — GPAW per-element setup names
//              ({"Mo": "6"} → Mo.6.dzp.basis, Mo.6.PBE);
//   `basis_path` — optional folder (relative to the structure folder) searched first.
// GPAW files are looked up in: the user's `--basis-path` folders, `basis_path`, $GPAW_SETUP_PATH
// (colon-separated), then /usr/share/gpaw-setups (Debian's gpaw-data), each as `name` or `name.gz`.
import Foundation
import Structures
import Formats
import StageAPI

public struct BasisResolver: Sendable {
    /// Extra folders searched first (command line `--basis-path`).
    public var searchPaths: [String]
    public var environment: [String: String]
    public static let debianGPAWSetups = "/usr/share/gpaw-setups"
    public static let bundledGaussian = ["def2-svp": "def2-svp"]

    public init(searchPaths: [String] = [], environment: [String: String] = ProcessInfo.processInfo.environment) {
        self.searchPaths = searchPaths
        self.environment = environment
    }

    /// The basis of a structure read from `folder` (its info.json names it), checked against the
    /// structure's elements and, when present, the shells of info.json's `elements_orbital_map`.
    public func resolve(_ record: DFTRecord, folder: URL?) throws -> BasisSet {
        let infoFile = folder.map { $0.appendingPathComponent("info.json").path } ?? "\(record.name)/info.json"
        func string(_ key: String) throws -> String? {
            guard let v = record.extraInfoValue(key) else { return nil }
            guard case .string(let s) = v else {
                throw BasisError(file: infoFile, field: key, message: "must be a string, found \(v.typeDescription)")
            }
            return s
        }
        guard let name = try string("basis") else {
            throw BasisError(file: infoFile, field: "basis", message: "missing: the basis is needed to compute the overlap (e.g. \"def2-svp\", or \"dzp\" with \"code\": \"gpaw\")")
        }
        let code = try string("code")?.lowercased() ?? ""
        let elements = record.structure.species
        var dirs = searchPaths
        if let p = try string("basis_path") {
            dirs.append(p.hasPrefix("/") || folder == nil ? p : folder!.appendingPathComponent(p).path)
        }
        let basis: BasisSet
        if code.hasPrefix("gpaw") {
            let xc = try string("xc") ?? "PBE"
            var setupNames: [String: String] = [:]
            if let v = record.extraInfoValue("setups") {
                guard case .object(let pairs) = v else {
                    throw BasisError(file: infoFile, field: "setups", message: "must be an object {\"Mo\": \"6\"}, found \(v.typeDescription)")
                }
                for (k, value) in pairs {
                    switch value {
                    case .string(let s): setupNames[k] = s
                    case .int(let i): setupNames[k] = String(i)
                    default: throw BasisError(file: infoFile, field: "setups.\(k)", message: "must be a string")
                    }
                }
            }
            dirs += (environment["GPAW_SETUP_PATH"] ?? "").split(separator: ":").map(String.init)
            dirs.append(Self.debianGPAWSetups)
            basis = try gpaw(name: name, xc: xc, setups: setupNames, elements: elements, directories: dirs, infoFile: infoFile)
        } else {
            basis = try gaussian(name: name, folder: folder, directories: dirs, infoFile: infoFile)
        }
        try check(basis, record: record, infoFile: infoFile)
        return basis
    }

    func gpaw(name: String, xc: String, setups: [String: String], elements: [Int], directories: [String], infoFile: String) throws -> BasisSet {
        var out: [Int: NumericalElementBasis] = [:]
        for z in elements {
            let symbol = Elements.symbol(of: z) ?? "Z\(z)"
            let stem = setups[symbol].map { "\(symbol).\($0)" } ?? symbol
            let basisName = "\(stem).\(name).basis"
            let setupName = "\(stem).\(xc)"
            guard let basisFile = find(basisName, in: directories) else {
                throw BasisError(file: infoFile, field: "basis", message: "GPAW basis '\(name)' for \(symbol): no \(basisName)[.gz] in \(directories.joined(separator: ", ")) (install Debian's gpaw-data, or give --basis-path)")
            }
            guard let setupFile = find(setupName, in: directories) else {
                throw BasisError(file: infoFile, field: "xc", message: "GPAW PAW setup for \(symbol): no \(setupName)[.gz] in \(directories.joined(separator: ", "))")
            }
            let orbitals = try GPAWBasisReader.readBasis(at: basisFile, symbol: symbol)
            let setup = try GPAWBasisReader.readSetup(at: setupFile)
            out[z] = NumericalElementBasis(symbol: symbol, orbitals: orbitals, projectors: setup.projectors,
                                           overlapCorrection: setup.overlapCorrection, basisFile: basisFile, setupFile: setupFile)
        }
        return .numerical(name: name, elements: out)
    }

    func find(_ name: String, in directories: [String]) -> String? {
        for d in directories {
            for candidate in [name, name + ".gz"] {
                let p = URL(fileURLWithPath: d).appendingPathComponent(candidate).path
                if FileManager.default.fileExists(atPath: p) { return p }
            }
        }
        return nil
    }

    func gaussian(name: String, folder: URL?, directories: [String], infoFile: String) throws -> BasisSet {
        let file: String
        let text: String
        if let bundled = Self.bundledGaussian[name.lowercased()] {
            guard let url = Bundle.module.url(forResource: bundled, withExtension: "nw") else {
                throw BasisError(file: "Basis resources", field: bundled, message: "bundled basis file missing from the build")
            }
            file = url.path
            text = try DataFile.text(at: file)
        } else if name.contains("/") || name.hasSuffix(".nw") || name.hasSuffix(".nwchem") {
            file = name.hasPrefix("/") || folder == nil ? name : folder!.appendingPathComponent(name).path
            guard FileManager.default.fileExists(atPath: file) else {
                throw BasisError(file: infoFile, field: "basis", message: "basis file \(file) does not exist")
            }
            text = try DataFile.text(at: file)
        } else if let f = find(name + ".nw", in: directories) {
            file = f
            text = try DataFile.text(at: f)
        } else {
            throw BasisError(file: infoFile, field: "basis", message: "unknown basis '\(name)': bundled Gaussian bases are \(Self.bundledGaussian.keys.sorted().joined(separator: ", ")); for GPAW numerical orbitals set \"code\": \"gpaw\"; or give a path to an NWChem-format file")
        }
        return .gaussian(name: name, file: file, elements: try NWChemBasisReader.parse(text, file: file))
    }

    /// Every element present in the basis, and info.json's shells equal to the basis's.
    func check(_ basis: BasisSet, record: DFTRecord, infoFile: String) throws {
        for z in record.structure.species {
            let symbol = Elements.symbol(of: z) ?? "Z\(z)"
            guard let shells = basis.shells(of: z) else {
                throw BasisError(file: basis.file(of: record.structure.species.first { basis.shells(of: $0) != nil } ?? z),
                                 field: symbol, message: "element \(symbol) is absent from basis '\(basis.name)'")
            }
            if let declared = record.structure.basis[z], !declared.ls.isEmpty, declared.ls != shells {
                throw BasisError(file: infoFile, field: "elements_orbital_map.\(symbol)",
                                 message: "shells \(declared.ls) disagree with basis '\(basis.name)' (\(basis.file(of: z))): \(shells)")
            }
        }
    }
}
