// Which OpenBLAS kernels run. Debian's OpenBLAS 0.3.21 picks its kernels at load time from the
// CPU model; on processors newer than the library (the Xeons these machines report) it falls back
// to the SSE3 "Prescott" kernels. On the same CPU, sgemm 2048³ with 2 threads ran at 25 (Prescott),
// 149–163 (Haswell, AVX2) and 284–315 GFLOP/s (SkylakeX, AVX-512), and the whole test suite passes
// with either of the faster families. OpenBLAS reads OPENBLAS_CORETYPE only when it loads, so the
// `harmose` executable relaunches itself once with it set (see Sources/harmose/main.swift).
import COpenBLAS
import Foundation

public enum BLASKernels {
    /// The kernel family OpenBLAS is using in this process.
    public static var coreName: String { String(cString: openblas_get_corename()) }

    /// Kernel families that mean "CPU not recognised, generic fallback".
    static let genericFallbacks: Set<String> = ["Prescott", "Core2", "Penryn", "Dunnington", "Nehalem", "Atom", "Katmai", "Coppermine", "Northwood", "Banias", "generic", "Unknown"]

    /// The AVX-512 subsets OpenBLAS's SkylakeX kernels use.
    static let skylakeXFlags: Set<String> = ["avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"]

    /// The OPENBLAS_CORETYPE to relaunch with, or nil to keep the current kernels: only when
    /// OpenBLAS fell back to a generic family and the user set neither OPENBLAS_CORETYPE nor
    /// HARMOSE_KEEP_BLAS_KERNELS. SkylakeX when the CPU has the AVX-512 subsets its kernels need,
    /// else Haswell when it has AVX2 and FMA, else nothing.
    public static func preferredCoreType(currentCore: String, cpuFlags: Set<String>,
                                         environment: [String: String]) -> String? {
        guard environment["OPENBLAS_CORETYPE"] == nil, environment["HARMOSE_KEEP_BLAS_KERNELS"] == nil else { return nil }
        guard genericFallbacks.contains(currentCore) else { return nil }
        guard cpuFlags.contains("avx2"), cpuFlags.contains("fma") else { return nil }
        return skylakeXFlags.isSubset(of: cpuFlags) ? "SkylakeX" : "Haswell"
    }

    /// CPU feature flags from /proc/cpuinfo (empty where it does not exist).
    public static func cpuFlags(cpuinfo path: String = "/proc/cpuinfo") -> Set<String> {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return [] }
        for line in text.split(separator: "\n") where line.hasPrefix("flags") {
            if let colon = line.firstIndex(of: ":") {
                return Set(line[line.index(after: colon)...].split(separator: " ").map(String.init))
            }
        }
        return []
    }

    /// Relaunches the current executable with better OpenBLAS kernels when `preferredCoreType`
    /// says so; returns normally otherwise (or if the relaunch is impossible).
    public static func relaunchWithPreferredKernelsIfNeeded() {
        let environment = ProcessInfo.processInfo.environment
        guard let core = preferredCoreType(currentCore: coreName, cpuFlags: cpuFlags(), environment: environment) else { return }
        setenv("OPENBLAS_CORETYPE", core, 1)
        execv("/proc/self/exe", CommandLine.unsafeArgv)
        // execv returned: it failed; carry on with the kernels we have.
        unsetenv("OPENBLAS_CORETYPE")
    }
}
