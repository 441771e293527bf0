import ArgumentParser
import CRecurdKernels
import Foundation
import RecurdDaemon

@main
struct Recurd: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "recurd",
        abstract: "Stateful LSTM/GRU inference and online learning for streams.",
        version: BuildInfo.description,
        subcommands: [ServeCommand.self, DemoCommand.self, InitCommand.self, RunCommand.self, FitCommand.self, PublishCommand.self, TailCommand.self, ControlClientCommand.self, KeygenCommand.self, BenchCommand.self]
    )

    static func main() async {
        #if arch(x86_64)
        // The Swift numerics are compiled for x86-64-v3 (Package.swift): on an older CPU, or a
        // virtual one that hides AVX2, say so rather than die of an illegal instruction.
        guard recurd_kernels_isa_available(RECURD_ISA_AVX2.rawValue) != 0 else {
            FileHandle.standardError.write(Data("recurd: this build needs an x86-64 CPU with AVX2 and FMA (x86-64-v3, Haswell or Zen and later); this one lacks them (a VM's CPU model may hide them: pass the host's, e.g. -cpu host)\n".utf8))
            Foundation.exit(1)
        }
        #endif
        await main(nil)
    }
}
