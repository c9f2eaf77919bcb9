import HarmoSECLI

HarmoSECommand.main()
