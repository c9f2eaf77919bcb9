import Autograd
import HarmoSECLI
import Linalg

BLASKernels.relaunchWithPreferredKernelsIfNeeded()
// Commands compute on every core unless they choose a budget themselves (--threads); results do
// not depend on it.
ExecutionContext.allCores.run { HarmoSECommand.mainReportingErrors() }
