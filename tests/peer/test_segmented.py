"""protocols.segmented.SegmentedMap: a model check (Hypothesis) and its bounds."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from protocols.segmented import SegmentedMap

ops = st.lists(st.tuples(st.sampled_from(["put", "pop", "get", "replace", "rotate"]), st.integers(0, 30),
                         st.integers(1, 5)), max_size=200)


@given(ops, st.integers(1, 4), st.integers(1, 6))
def test_behaves_like_a_dict_that_forgets_only_whole_old_segments(script: list[tuple[str, int, int]], segments: int,
                                                                   size: int) -> None:
    m: SegmentedMap[int, int] = SegmentedMap(segments, size)
    model: dict[int, int] = {}
    for op, k, v in script:
        if op == "put":
            m.put(k, v)
            model[k] = v
        elif op == "pop":
            m.pop(k)
            model.pop(k, None)
        elif op == "replace":
            assert m.replace(k, v) == (m.get(k) is not None)
            if k in model and m.get(k) is not None:
                model[k] = v
        elif op == "rotate":
            m.rotate()
        got = m.get(k)
        # Either the model's value, or forgotten (evicted with an old segment); never a stale value.
        assert got is None or got == model.get(k)
        assert len(m) <= segments * size
    # The newest segment is never evicted: the last key put (if not popped later) is still there.
    puts = [(k, v) for op, k, v in script if op == "put"]
    if puts and script[-1][0] == "put":
        assert m.get(puts[-1][0]) == puts[-1][1]


def test_oldest_segment_goes_first_and_whole() -> None:
    m: SegmentedMap[int, str] = SegmentedMap(3, 2)
    for i in range(6):
        m.put(i, str(i))
    # segments [0,1] [2,3] [4,5]: full, nothing dropped yet
    assert [m.get(i) for i in range(6)] == ["0", "1", "2", "3", "4", "5"]
    m.put(6, "6")  # a 4th segment starts: the first is dropped whole
    assert [m.get(i) for i in range(7)] == [None, None, "2", "3", "4", "5", "6"]
    m.put(2, "new")
    assert m.get(2) == "new"
    m.pop(2)
    assert m.get(2) is None  # every copy gone
    assert m.replace(3, "x") and m.get(3) == "x" and not m.replace(99, "y")
