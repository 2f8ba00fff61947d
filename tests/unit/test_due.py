from tables.due import DueIndex


def test_pops_only_what_is_due_earliest_first():
    index = DueIndex([(b"c", 3.0), (b"a", 1.0)])
    index.set(b"b", 2.0)
    assert index.pop_due(0.5) == []
    assert index.pop_due(2.0) == [b"a", b"b"]
    assert len(index) == 1 and b"c" in index and b"a" not in index


def test_setting_again_moves_the_key_and_discard_drops_it():
    index = DueIndex()
    index.set(b"a", 1.0)
    index.set(b"a", 5.0)  # later: the stale 1.0 entry is skipped
    index.set(b"b", 1.0)
    index.discard(b"b")
    assert index.pop_due(2.0) == []
    assert index.get(b"a") == 5.0
    index.set(b"a", 0.5)  # earlier again
    assert index.pop_due(1.0) == [b"a"]
    assert len(index) == 0


def test_stale_entries_are_compacted():
    index = DueIndex()
    for n in range(5000):
        index.set(b"k", float(n))
    assert len(index._heap) <= 2 * len(index) + 1024
    assert index.pop_due(10_000.0) == [b"k"]
