// The recipe's schedule for the data's size, and bench --predict-run's sum of the phases it implies.
import XCTest
@testable import Training

final class RecipeTests: XCTestCase {
    /// The default schedule: the recipe's epochs up to 10,000 samples, shorter above (pretraining by (10k/N)^(1/3),
    /// the hold and fine-tuning's cap by (10k/N)^(1/2)), never longer as N grows and never below one epoch.
    func testScheduleShrinksAboveTenThousandSamples() {
        for n in [1, 846, 6_435, 10_000] {
            XCTAssertEqual(Recipe.pretrainEpochs(samples: n), Recipe.pretrainEpochs, "n \(n)")
            XCTAssertEqual(Recipe.holdTarget(samples: n), Recipe.holdTarget, "n \(n)")
            XCTAssertEqual(Recipe.epochs(samples: n), Recipe.epochs, "n \(n)")
            XCTAssertNil(Recipe.shrinkNote(samples: n, pretrainFlag: "--pretrain-epochs", hold: true, cap: true))
        }
        XCTAssertEqual([70_000, 1_000_000].map { Recipe.pretrainEpochs(samples: $0) }, [52, 22])
        XCTAssertEqual([70_000, 1_000_000].map { Recipe.holdTarget(samples: $0) }, [11, 3])
        XCTAssertEqual([70_000, 1_000_000].map { Recipe.epochs(samples: $0) }, [38, 10])
        var last = (Recipe.pretrainEpochs, Recipe.holdTarget, Recipe.epochs)
        for n in stride(from: 10_000, through: 100_000_000, by: 9_990) {
            let now = (Recipe.pretrainEpochs(samples: n), Recipe.holdTarget(samples: n), Recipe.epochs(samples: n))
            XCTAssert(now.0 <= last.0 && now.1 <= last.1 && now.2 <= last.2, "n \(n): \(now) after \(last)")
            XCTAssert(now.0 >= 1 && now.1 >= 1 && now.1 <= now.2, "n \(n): \(now)")
            last = now
        }
        XCTAssertEqual(Recipe.shrunk(0, samples: 70_000, exponent: 0.5), 0, "a hold of 0 stays 0")
        let note = Recipe.shrinkNote(samples: 70_000, pretrainFlag: "--pretrain-epochs", hold: true, cap: true) ?? ""
        XCTAssert(note.contains("52 pretraining epochs (--pretrain-epochs)") && note.contains("a hold of 11 epochs")
                  && note.contains("38 fine-tuning"), note)
        // Only the defaults a run took: `dec --pretrained ... --epochs 1` names the hold alone.
        let hold = Recipe.shrinkNote(samples: 70_000, pretrainFlag: nil, hold: true, cap: false) ?? ""
        XCTAssert(hold.contains("a hold of 11 epochs") && !hold.contains("pretraining epochs") && !hold.contains("fine-tuning"), hold)
        XCTAssertNil(Recipe.shrinkNote(samples: 70_000, pretrainFlag: nil, hold: false, cap: false))
    }

    /// bench --predict-run: the recipe's epochs for the samples at the given rates; fine-tuning's steps 75% of an epoch.
    func testRunForecastAddsThePhases() {
        let forecast = RunForecast(samples: 70_000, pretrainRate: 7_000, decRate: 14_000, startSeconds: 25)
        XCTAssertEqual(forecast.pretrainEpochs, 52)
        XCTAssertEqual(forecast.fineTuningEpochs, 38)
        XCTAssertEqual(forecast.pretrainSeconds, 520, accuracy: 1e-9)           // 52 x 70,000 / 7,000
        XCTAssertEqual(forecast.fineTuningSeconds, 38 * 5 / 0.75, accuracy: 1e-9)  // 38 x 70,000 / 14,000 / 0.75
        XCTAssertEqual(forecast.totalSeconds, 520 + 25 + 38 * 5 / 0.75, accuracy: 1e-9)
        let small = RunForecast(samples: 10_000, pretrainRate: 10_000, decRate: 20_000, startSeconds: 3)
        XCTAssertEqual(small.pretrainSeconds, 100, accuracy: 1e-9)              // the full schedule: 100 epochs
        XCTAssertEqual(small.fineTuningSeconds, 100 * 0.5 / 0.75, accuracy: 1e-9)
    }
}
