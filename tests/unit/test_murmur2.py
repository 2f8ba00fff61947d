"""tables/murmur2.py gives the partitions aiokafka's default partitioner gives."""

import random

import pytest
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.partitioner import murmur2 as aiokafka_murmur2

from tables.murmur2 import default_partitioner, murmur2, partition_for


@pytest.mark.parametrize("key", [b"", b"a", b"ab", b"abc", b"abcd", b"abcde",
                                 b"sub-1|http://api.test/users/42", "é|ü".encode(), b"\xff" * 7])
def test_same_hash_as_aiokafka(key):
    assert murmur2(key) == aiokafka_murmur2(key)


def test_random_keys():
    rand = random.Random(13)
    for _ in range(5000):
        key = rand.randbytes(rand.randint(0, 120))
        assert murmur2(key) == aiokafka_murmur2(key)
        assert default_partitioner(key, list(range(7)), [1, 2]) == DefaultPartitioner()(
            key, list(range(7)), [1, 2])
        assert partition_for(key, 4) == (aiokafka_murmur2(key) & 0x7FFFFFFF) % 4


def test_no_key_takes_an_available_partition():
    assert default_partitioner(None, [0, 1, 2], [2]) == 2
    assert default_partitioner(None, [0, 1, 2], []) in (0, 1, 2)
