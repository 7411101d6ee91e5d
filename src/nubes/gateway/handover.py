"""A `DeviceLink` to a `LinkSnapshot` and back (see `nubes.gateway.state`)."""

from __future__ import annotations

import logging
import time
from collections import deque
from typing import Any

from nubes import flap
from nubes.errors import ProtocolError
from nubes.gateway.downlinks import Offer
from nubes.gateway.link import RECENTLY_DELIVERED, DeviceLink
from nubes.gateway.state import LinkSnapshot, OfferState, next_version

log = logging.getLogger(__name__)


def snapshot_of(link: DeviceLink, owner: str) -> LinkSnapshot | None:
    """The link as a snapshot with a new version; None while an uplink awaits its ack."""
    if link.transfer.awaiting_commit:
        return None
    link.version = version = next_version(link.version)
    info = link.info
    offers = link.offers
    return LinkSnapshot(
        version,
        owner,
        link.fragment_limit,
        info.session_id,
        (info.decoder_hash, info.encoder_hash, info.config_hash),
        link.transfer.state(time.monotonic()),
        tuple([OfferState(*_offer_values(o)) for o in offers.values()]) if offers else (),
        tuple(link.delivered),
        time.time(),
    )


def _offer_values(offer: Offer) -> tuple[Any, str, bytes, Any, bool]:
    return offer.downlink_id, offer.type_name, offer.message, offer.body, offer.stored


def adopt(link: DeviceLink, snapshot: LinkSnapshot) -> bool:
    """Continues `link` from a newer snapshot of the same envelope; False if not used."""
    if snapshot.version <= link.version or snapshot.fragment_limit != link.fragment_limit:
        return False
    age = max(0.0, time.time() - snapshot.saved_at)
    try:
        transfer = flap.Transfer.from_state(
            snapshot.transfer, link.fragment_limit, time.monotonic() - age
        )
    except (ValueError, ProtocolError) as err:
        log.warning("gateway state of device %s ignored: %s", link.info.serial, err)
        return False
    link.transfer = transfer
    link.offers = {
        o.downlink_id: Offer(o.downlink_id, o.type_name, o.message, o.body, o.stored)
        for o in snapshot.offers
    }
    link.delivered = deque(snapshot.delivered, maxlen=RECENTLY_DELIVERED)
    link.version = snapshot.version
    info = link.info
    info.session_id = snapshot.session_id or info.session_id
    decoder, encoder, config = snapshot.hashes
    info.decoder_hash = decoder or info.decoder_hash
    info.encoder_hash = encoder or info.encoder_hash
    info.config_hash = config or info.config_hash
    return True
