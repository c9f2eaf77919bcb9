import HarmoSECLI
import Linalg

BLASKernels.relaunchWithPreferredKernelsIfNeeded()
HarmoSECommand.mainReportingErrors()
