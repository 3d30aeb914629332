"""Leaderboards built from what the MLflow store holds, nothing else.

One module per idea: ``aggregate`` (runs to per-combination seed statistics),
``metrics`` (which way is better), ``statistics`` (CI, gap closed, Welch + Holm),
``board`` (groups with their teacher and student-only references), ``columns`` (what
each table shows, and its footnotes), ``markdown`` / ``html`` / ``plots`` (renderings),
``store`` (reading a suite's runs) and ``publish`` (files on disk, and the index).
"""
