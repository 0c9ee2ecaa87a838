#!/usr/bin/python3
"""Checks the comparison runner's statistics on made-up repetitions."""

import contextlib
import io
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare  # noqa: E402

NAMES = ["glibc", "jemalloc", "rulloc", compare.HARDENED]
CONFIGS = [("larson", 2)]


def results_from(walls_by_allocator):
    results = {}
    for a, walls in walls_by_allocator.items():
        results[("larson", 2, a)] = {"wall_s": sorted(walls)[len(walls) // 2],
                                     "peak_rss_mb": 1.0, "wall_samples": walls}
    return results


class PairedRatioTest(unittest.TestCase):
    def test_a_slow_spell_over_whole_repetitions_cancels_out(self):
        # Repetitions 1 and 2 ran in a slow spell that tripled every time;
        # it lasted into repetition 3 for glibc's and rulloc's runs, not for
        # jemalloc's, which ran before them. rulloc is the fastest in every
        # repetition, but its median falls in the spell and jemalloc's not.
        results = results_from({
            "glibc":    [1.00, 3.00, 3.00, 3.00, 1.00],
            "jemalloc": [1.20, 3.60, 3.60, 1.20, 1.20],
            "rulloc":   [0.90, 2.70, 2.70, 2.70, 0.90],
            compare.HARDENED: [2.0, 6.0, 6.0, 6.0, 2.0],
        })
        # By the medians alone, jemalloc would be the fastest.
        self.assertGreater(results[("larson", 2, "rulloc")]["wall_s"],
                           results[("larson", 2, "jemalloc")]["wall_s"])
        compare.add_paired_ratios(results, NAMES, CONFIGS)
        ratio = {a: results[("larson", 2, a)]["time_ratio"] for a in NAMES}
        self.assertAlmostEqual(ratio["rulloc"], 1.0)
        self.assertAlmostEqual(ratio["glibc"], 1.0 / 0.9)
        self.assertAlmostEqual(ratio["jemalloc"], 1.2 / 0.9)
        self.assertEqual(compare.fastest(results, "larson", 2, NAMES), "rulloc")

    def test_runs_are_compared_with_their_own_repetition(self):
        # Every allocator is the fastest in some repetition, so pairing a run
        # with another repetition's (a shifted or sorted list) changes the
        # ratios.
        results = results_from({
            "glibc":    [1.0, 3.0, 2.0, 5.0, 4.0],
            "jemalloc": [2.0, 1.0, 4.0, 3.0, 5.0],
            "rulloc":   [3.0, 2.0, 1.0, 4.0, 2.5],
            compare.HARDENED: [9.0] * 5,
        })
        # Best per repetition: 1, 1, 1, 3, 2.5.
        compare.add_paired_ratios(results, NAMES, CONFIGS)
        ratio = {a: results[("larson", 2, a)]["time_ratio"] for a in NAMES}
        self.assertAlmostEqual(ratio["glibc"], 5.0 / 3.0)     # 1, 3, 2, 5/3, 1.6
        self.assertAlmostEqual(ratio["jemalloc"], 2.0)        # 2, 1, 4, 1, 2
        self.assertAlmostEqual(ratio["rulloc"], 4.0 / 3.0)    # 3, 2, 1, 4/3, 1
        self.assertEqual(compare.fastest(results, "larson", 2, NAMES), "rulloc")

    def test_the_hardened_column_never_sets_the_best(self):
        results = results_from({
            "glibc": [1.0, 1.0, 1.0], "jemalloc": [2.0, 2.0, 2.0], "rulloc": [1.5, 1.5, 1.5],
            compare.HARDENED: [0.5, 0.5, 0.5],
        })
        compare.add_paired_ratios(results, NAMES, CONFIGS)
        self.assertAlmostEqual(results[("larson", 2, "glibc")]["time_ratio"], 1.0)
        self.assertAlmostEqual(results[("larson", 2, compare.HARDENED)]["time_ratio"], 0.5)
        self.assertEqual(compare.fastest(results, "larson", 2, NAMES), "glibc")

    def test_a_hardened_column_of_fewer_repetitions_pairs_with_the_first(self):
        # Full mode runs the hardened column in the first three of nine
        # repetitions; the last six ran in a slow spell that tripled every
        # time. Its runs pair with the first three repetitions' best.
        results = results_from({
            "glibc": [1.0] * 3 + [3.0] * 6, "jemalloc": [1.2] * 3 + [3.6] * 6,
            "rulloc": [1.1] * 3 + [3.3] * 6, compare.HARDENED: [2.2, 2.2, 2.2],
        })
        for r in results.values():
            r.update(cpu_s=r["wall_s"], after_idle_rss_mb=0.0,
                     wall_mad_pct=0.0)  # for the printed tables
        compare.add_paired_ratios(results, NAMES, CONFIGS)
        self.assertAlmostEqual(results[("larson", 2, compare.HARDENED)]["time_ratio"], 2.2)
        self.assertAlmostEqual(results[("larson", 2, "rulloc")]["time_ratio"], 1.1)
        with contextlib.redirect_stdout(io.StringIO()) as out:
            compare.print_tables(results, NAMES, CONFIGS)
        self.assertIn("Hardened mode costs 2.00x Rulloc's time", out.getvalue())

    def test_results_saved_without_repetitions_use_the_medians(self):
        results = results_from({"glibc": [2.0], "jemalloc": [3.0], "rulloc": [1.0],
                                compare.HARDENED: [4.0]})
        for r in results.values():
            del r["wall_samples"]
        self.assertAlmostEqual(compare.time_ratio(results, "larson", 2, "jemalloc", NAMES), 3.0)


class SignificanceTest(unittest.TestCase):
    def test_slower_in_every_repetition_is_significant(self):
        # 2% slower in each of nine repetitions, whatever the host did.
        peer = [1.0, 1.3, 0.9, 1.1, 1.0, 1.2, 0.95, 1.05, 1.0]
        rulloc = [1.02 * w for w in peer]
        self.assertEqual(compare.difference_p_value(rulloc, peer), (2 / 512, 1))
        self.assertEqual(compare.difference_p_value(peer, rulloc), (2 / 512, -1))

    def test_a_median_above_one_from_mixed_repetitions_is_far_from_significant(self):
        # The median ratio is 1.01, but Rulloc is faster by more in four
        # repetitions of nine.
        peer = [1.0] * 9
        rulloc = [1.01, 1.01, 1.01, 1.01, 1.01, 0.95, 0.96, 0.97, 0.98]
        self.assertAlmostEqual(compare.paired_ratio(rulloc, peer), 1.01)
        # Signed ranks 1..5 up (sum 15), 6..9 down (30): 109 of the 512
        # sign patterns give an up-sum of 15 or less, as many 30 or more.
        p, lean = compare.difference_p_value(rulloc, peer)
        self.assertAlmostEqual(p, 2 * 109 / 512)
        self.assertEqual(lean, -1)

    def test_five_repetitions_can_show_a_difference(self):
        # Quick mode: five repetitions, all slower, is p = 2/32.
        self.assertAlmostEqual(compare.difference_p_value([1.1] * 5, [1.0] * 5)[0], 2 / 32)

    def test_a_repetition_with_equal_times_is_left_out(self):
        # Four slower repetitions and one equal: the exact test on four,
        # 2/16, not a normal approximation on five.
        p, _ = compare.difference_p_value([1.1, 1.1, 1.1, 1.1, 1.0], [1.0] * 5)
        self.assertAlmostEqual(p, 2 / 16)

    def test_equal_times_are_no_difference(self):
        self.assertEqual(compare.difference_p_value([1.0] * 5, [1.0] * 5), (1.0, 0))


class VerdictTest(unittest.TestCase):
    ROWS = [("larson", 1), ("larson", 2), ("burst", 1), ("burst", 2)]

    def results(self, rulloc_by_row):
        results = {}
        for (w, t), walls in zip(self.ROWS, rulloc_by_row):
            n = len(walls)
            for a, samples in (("glibc", [1.0] * n), ("jemalloc", [1.0] * n),
                               ("rulloc", walls), (compare.HARDENED, [2.0] * n)):
                results[(w, t, a)] = {"wall_s": sorted(samples)[n // 2],
                                      "wall_samples": samples, "wall_mad_pct": 0.0}
        return results

    def printout(self, results):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            compare.print_rulloc_against_peers(results, NAMES, self.ROWS)
        return out.getvalue()

    def test_the_adjustment_for_many_rows_turns_a_lone_small_p_into_a_tie(self):
        # Alone, seven slower repetitions of nine and two faster by less
        # (down-ranks 1 and 2: 5 of the 512 sign patterns have a down-sum of
        # 3 or less) would be p = 2 * 5/512 = 0.020: slower. Among four rows
        # whose others tell nothing, Benjamini-Hochberg multiplies it by 4.
        nothing = [1.01, 0.99, 1.02, 0.98, 1.03, 0.97, 1.04, 0.96, 1.0]
        slower = [1.02] * 7 + [0.995, 0.99]
        results = self.results([nothing, nothing, nothing, slower])
        self.assertAlmostEqual(compare.difference_p_value(slower, [1.0] * 9)[0], 10 / 512)
        verdicts = compare.verdicts_against(results, "jemalloc", self.ROWS)
        self.assertEqual([v[3] for v in verdicts], ["tie"] * 4)
        self.assertAlmostEqual(verdicts[3][2], 4 * 10 / 512)

    def test_rows_that_all_differ_keep_their_verdicts(self):
        faster = [0.9] * 9
        slower = [1.1] * 9
        results = self.results([faster, faster, faster, slower])
        verdicts = compare.verdicts_against(results, "glibc", self.ROWS)
        self.assertEqual([v[3] for v in verdicts], ["faster", "faster", "faster", "slower"])
        self.assertTrue(all(v[2] == 2 / 512 for v in verdicts))

    def test_a_median_ratio_against_the_ranks_is_a_tie(self):
        # 27 repetitions: fourteen 0.1-1.4% faster (the median among them),
        # thirteen 10% slower. The slower ones hold the top ranks (sum 273
        # of 378): two-sided p = 0.044, still under 0.05 after the adjustment
        # among rows that all differ; the ranks say slower, the median
        # ratio faster.
        mixed = [1 - 0.001 * (i + 1) for i in range(14)] + [1.1] * 13
        faster = [0.9] * 27
        p, lean = compare.difference_p_value(mixed, [1.0] * 27)
        self.assertLess(p, 0.05)
        self.assertEqual(lean, 1)
        self.assertLess(compare.paired_ratio(mixed, [1.0] * 27), 1)
        results = self.results([faster, faster, faster, mixed])
        verdicts = compare.verdicts_against(results, "glibc", self.ROWS)
        self.assertLess(verdicts[3][2], 0.05)
        self.assertEqual(verdicts[3][3], "tie")

    def test_the_printout_lists_ties_and_slower_rows_and_the_first_target(self):
        faster = [0.9] * 9
        slower = [1.1] * 9
        results = self.results([faster, faster, faster, slower])
        text = self.printout(results)
        self.assertIn("glibc           faster on 3 of 4 rows", text)
        self.assertIn("slower: burst 2t 1.100", text)
        self.assertIn("by the median ratio: no; not on glibc burst 2t 1.100, "
                      "jemalloc burst 2t 1.100", text)
        self.assertIn("shown faster by the test (q < 0.05, each peer's rows adjusted together) "
                      "on 6 of their 8 rows", text)

    def test_the_first_target_met(self):
        results = self.results([[0.9] * 9] * 4)
        self.assertIn("on every row, by the median ratio: yes", self.printout(results))

    def test_five_repetitions_list_the_ratios_alone(self):
        # Two-sided, five repetitions can give p = 2/32 at best.
        results = self.results([[0.9] * 9] * 3 + [[1.1] * 9])
        for r in results.values():
            r["wall_samples"] = r["wall_samples"][:5]
        text = self.printout(results)
        self.assertIn("With 5 repetitions no row can reach q < 0.05", text)
        self.assertIn("glibc           ratio not below 1: burst 2t 1.100 (±0.0%)", text)
        self.assertIn("by the median ratio: no; not on glibc burst 2t 1.100", text)
        self.assertNotIn("shown faster", text)

    def test_an_equal_row_is_not_faster(self):
        results = self.results([[0.9] * 9] * 3 + [[1.0] * 9])
        self.assertIn("no; not on glibc burst 2t 1.000, jemalloc burst 2t 1.000",
                      self.printout(results))

    def test_a_workload_is_judged_over_its_thread_counts(self):
        # larson: one row 10% faster, one 1% slower; per row the target is
        # missed, per workload (geometric mean 0.953) it is met.
        results = self.results([[0.9] * 9, [1.01] * 9, [0.9] * 9, [0.9] * 9])
        text = self.printout(results)
        self.assertIn("on every row, by the median ratio: no; not on glibc larson 2t 1.010", text)
        self.assertIn("on every workload, by the geometric mean of its rows' median ratios: yes",
                      text)
        verdicts = compare.workload_verdicts_against(results, "glibc", self.ROWS)
        self.assertEqual([v[0] for v in verdicts], ["larson", "burst"])
        self.assertAlmostEqual(verdicts[0][1], (0.9 * 1.01) ** 0.5)
        # The test runs over the nine repetitions, each the mean of its two
        # rows' log ratios: all nine faster, p = 2/512. (Over the 18 pairs
        # as such, the nine slower ones would leave p = 0.081, a tie.)
        self.assertAlmostEqual(verdicts[0][2], 2 / 512)
        self.assertEqual([v[3] for v in verdicts], ["faster", "faster"])

    def test_a_workload_p_is_adjusted_over_the_workloads(self):
        # larson's repetitions: eight faster and one slower holding rank 5
        # of 9; 10 of the 512 sign patterns have a down-sum of 5 or less, so
        # p = 20/512 = 0.039 alone. Beside burst, which tells nothing,
        # Benjamini-Hochberg doubles it: a tie.
        mostly_faster = [0.99, 0.98, 0.97, 0.96, 1.052, 0.94, 0.93, 0.92, 0.91]
        nothing = [1.01, 0.99, 1.02, 0.98, 1.03, 0.97, 1.04, 0.96, 0.995]
        results = self.results([mostly_faster, mostly_faster, nothing, nothing])
        self.assertAlmostEqual(compare.difference_p_value(mostly_faster, [1.0] * 9)[0], 20 / 512)
        verdicts = compare.workload_verdicts_against(results, "jemalloc", self.ROWS)
        self.assertAlmostEqual(verdicts[0][2], 2 * 20 / 512)
        self.assertEqual([v[3] for v in verdicts], ["tie", "tie"])

    def test_a_workload_slower_overall_misses_the_target(self):
        results = self.results([[0.9] * 9, [0.9] * 9, [0.98] * 9, [1.05] * 9])
        text = self.printout(results)
        self.assertIn("on every workload, by the geometric mean of its rows' median ratios: no; "
                      "not on glibc burst 1.014, jemalloc burst 1.014", text)
        self.assertIn("on 2 of their 4 workloads: not on glibc burst 1.014 (q=", text)

    def test_a_workload_of_ties_is_not_shown_faster(self):
        nothing = [1.01, 0.99, 1.02, 0.98, 1.03, 0.97, 1.04, 0.96, 0.995]
        results = self.results([[0.9] * 9, [0.9] * 9, nothing, nothing])
        verdicts = compare.workload_verdicts_against(results, "jemalloc", self.ROWS)
        self.assertLess(verdicts[1][1], 1)
        self.assertGreater(verdicts[1][2], 0.05)
        self.assertEqual(verdicts[1][3], "tie")
        self.assertIn("on 2 of their 4 workloads: not on glibc burst", self.printout(results))


if __name__ == "__main__":
    unittest.main()
