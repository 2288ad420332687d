// Continuing a run with --resume: rank 0 reads the run's command.json and every rank receives it; the options given
// again are either ones a continued run may change (taken, and remembered in command.json as overrides outside the
// configuration hash that checkpoints carry) or refused. Returns the arguments to parse for the continued run. The
// option lists themselves are the command line's; this is the protocol.
import Collective
import Foundation
import Report
import Tensor

public enum RunResumption {
    /// Options as (name, value) pairs: `--name value` or `--name=value`; a flag gets an empty value.
    public static func pairs(_ arguments: [String]) -> [(name: String, value: String)] {
        var pairs: [(name: String, value: String)] = []
        var i = 0
        while i < arguments.count {
            let argument = arguments[i]
            if let equals = argument.firstIndex(of: "="), argument.hasPrefix("--") {
                pairs.append((String(argument[..<equals]), String(argument[argument.index(after: equals)...])))
            } else if i + 1 < arguments.count, !arguments[i + 1].hasPrefix("--") {
                pairs.append((argument, arguments[i + 1]))
                i += 1
            } else {
                pairs.append((argument, ""))
            }
            i += 1
        }
        return pairs
    }

    /// `base` with every option that `changes` names replaced by its value there, as arguments.
    public static func merge(_ base: [(name: String, value: String)], _ changes: [(name: String, value: String)]) -> [String] {
        let changed = Set(changes.map(\.name))
        let kept = base.filter { !changed.contains($0.name) }
        var latest: [String: String] = [:]
        var order: [String] = []
        for change in changes {
            if latest[change.name] == nil { order.append(change.name) }
            latest[change.name] = change.value
        }
        return (kept + order.map { ($0, latest[$0]!) }).map { $0.value.isEmpty ? $0.name : "\($0.name)=\($0.value)" }
    }

    /// The continued run of `command` in `directory`: the arguments to parse, and its manifest (with this
    /// invocation's changes as overrides). `given`: the run-defining options of this invocation.
    public static func prepare(directory: String, command: String, given arguments: [String], resumable: [String],
                               communicator: Communicator) throws -> (arguments: [String], manifest: RunManifest) {
        let manifest = try readManifest(directory, communicator)
        guard manifest.command == command else {
            throw RunError("\(directory) holds a \(manifest.command) run: continue it with `deepcluster \(manifest.command) --resume \(directory)`",
                           everyRank: true)
        }
        let given = pairs(arguments)
        let refused = given.map(\.name).filter { !resumable.contains($0) }
        if !refused.isEmpty {
            throw RunError("--resume continues \(directory) with the options of its \(RunManifest.fileName); "
                + "\(Set(refused).sorted().joined(separator: ", ")) cannot change in a continued run. "
                + "Those that can: \(resumable.joined(separator: ", ")) (and --threads, --stop-after-epochs); "
                + "for other settings start a new run with --out", everyRank: true)
        }
        let overrides = merge(pairs(manifest.overrides ?? []), given)
        var updated = manifest
        if !given.isEmpty {
            updated.overrides = overrides  // written by the run once its checkpoint has loaded
            var locked = ""
            if communicator.rank == 0 { do { try RunDirectory.lock(directory) } catch { locked = "\(error)" } }
            locked = try communicator.broadcast(locked, root: 0)
            if !locked.isEmpty { throw RunError(locked, everyRank: true) }
            if communicator.rank == 0 {
                let before = pairs(manifest.arguments + (manifest.overrides ?? []))
                print("resuming with " + given.map { pair in
                    "\(pair.name) \(pair.value) (was \(before.last(where: { $0.name == pair.name })?.value ?? "the default"))"
                }.joined(separator: ", "))
            }
        }
        return (merge(pairs(manifest.arguments), pairs(overrides)), updated)
    }

    /// Rank 0 reads the manifest; every rank receives the same one.
    static func readManifest(_ directory: String, _ communicator: Communicator) throws -> RunManifest {
        var text = "", failure = ""
        if communicator.rank == 0 {
            do { text = String(decoding: try JSONEncoder().encode(try RunManifest.read(from: directory)), as: UTF8.self) } catch {
                failure = "\(error)"
            }
        }
        failure = try communicator.broadcast(failure, root: 0)
        if !failure.isEmpty { throw RunError(failure, everyRank: true) }
        return try JSONDecoder().decode(RunManifest.self, from: Data(try communicator.broadcast(text, root: 0).utf8))
    }
}
