"""streams/topics.py: Flare's topics, and what makes an existing topic unusable (pure)."""

from __future__ import annotations

import pytest

from app.config import ConfigError, Settings
from streams.topics import flare_topics, mismatches

SETTINGS = Settings(topic_prefix="p", app_id="a", partitions=4)
SPECS = flare_topics(SETTINGS)
GOOD_PARTITIONS = {spec.name: spec.partitions for spec in SPECS}
GOOD_COMPACTION = {spec.name: spec.compacted for spec in SPECS}


def test_every_topic_as_flare_creates_it_is_fine():
    assert mismatches(SPECS, GOOD_PARTITIONS, GOOD_COMPACTION) == []


def test_topics_not_there_yet_are_not_checked():
    assert mismatches(SPECS, {}, {}) == []


def test_a_changelog_follows_its_source_not_the_setting():
    """Topics created with partitions=8 earlier, setting now 4: still consistent."""
    partitions = {**GOOD_PARTITIONS, "p.documents": 8, "a-documents-changelog": 8}
    assert mismatches(SPECS, partitions, GOOD_COMPACTION) == []


@pytest.mark.parametrize("changes, expected", [
    ({"a-documents-changelog": 2}, "a-documents-changelog has 2 partitions but p.documents has 4"),
    ({"a-deliveries-changelog": 8}, "a-deliveries-changelog has 8 partitions but p.deliveries has 4"),
    ({"p.resources": 3}, "p.resources has 3 partitions; it must have 1"),
    ({"p.subscriptions": 2}, "p.subscriptions has 2 partitions; it must have 1"),
])
def test_partition_counts_that_would_misplace_records(changes, expected):
    problems = mismatches(SPECS, {**GOOD_PARTITIONS, **changes}, GOOD_COMPACTION)
    assert len(problems) == 1 and problems[0].startswith(expected), problems


@pytest.mark.parametrize("name, compacted, expected", [
    ("p.documents", False, "p.documents has cleanup.policy delete; it must be compact"),
    ("a-documents-changelog", False, "a-documents-changelog has cleanup.policy delete; it must be compact"),
    ("p.deliveries.rejected", True,
     "p.deliveries.rejected has cleanup.policy compact; it must be delete"),
])
def test_cleanup_policies(name, compacted, expected):
    problems = mismatches(SPECS, GOOD_PARTITIONS, {**GOOD_COMPACTION, name: compacted})
    assert len(problems) == 1 and problems[0].startswith(expected), problems


@pytest.mark.parametrize("replication, setting, insync", [
    (1, 0, 1), (2, 0, 1), (3, 0, 2), (3, 3, 3), (5, 0, 4),
])
def test_min_insync_replicas(replication, setting, insync):
    settings = Settings(replication_factor=replication, min_insync_replicas=setting)
    assert settings.insync_replicas == insync


def test_min_insync_replicas_above_the_replication_factor_is_a_config_error():
    with pytest.raises(ConfigError, match="min_insync_replicas"):
        Settings(replication_factor=1, min_insync_replicas=2)
