import XCTest

final class LinalgPlaceholderTests: XCTestCase {
    func testPlaceholder() {}
}

import Linalg

final class BLASKernelsTests: XCTestCase {
    func testRelaunchOnlyForGenericFallbackOnAVX2Machines() {
        let avx2: Set<String> = ["sse3", "avx", "avx2", "fma"]
        XCTAssertEqual(BLASKernels.preferredCoreType(currentCore: "Prescott", cpuFlags: avx2, environment: [:]), "Haswell")
        let avx512 = avx2.union(["avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"])
        XCTAssertEqual(BLASKernels.preferredCoreType(currentCore: "Prescott", cpuFlags: avx512, environment: [:]), "SkylakeX")
        XCTAssertEqual(BLASKernels.preferredCoreType(currentCore: "Prescott", cpuFlags: avx2.union(["avx512f"]), environment: [:]), "Haswell")
        XCTAssertNil(BLASKernels.preferredCoreType(currentCore: "Haswell", cpuFlags: avx2, environment: [:]))
        XCTAssertNil(BLASKernels.preferredCoreType(currentCore: "SkylakeX", cpuFlags: avx2, environment: [:]))
        XCTAssertNil(BLASKernels.preferredCoreType(currentCore: "Prescott", cpuFlags: ["sse3"], environment: [:]))
        XCTAssertNil(BLASKernels.preferredCoreType(currentCore: "Prescott", cpuFlags: avx2, environment: ["OPENBLAS_CORETYPE": "Prescott"]))
        XCTAssertNil(BLASKernels.preferredCoreType(currentCore: "Prescott", cpuFlags: avx2, environment: ["HARMOSE_KEEP_BLAS_KERNELS": "1"]))
        XCTAssertFalse(BLASKernels.coreName.isEmpty)
    }
}
