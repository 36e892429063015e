//! Service specific permissions (SSP): what an authorization ticket lets its holder say in a
//! CAM or a DENM, beyond sending one at all.
//!
//! A station may send a CAM with an emergency container, or a DENM warning of an accident,
//! only if the ticket that signs it grants that in the SSP of the message's ITS-AID. Both
//! SSPs are bitmaps after a version octet; bit masks below count `0x80` as the first bit of
//! an octet (ETSI numbers it bit 0).
//!
//! * CAM (ITS-AID 36; EN 302 637-2 V1.4.1 / TS 103 900 V2.1.1 §6.2.2.2, the same layout in
//!   Vanetza's `cam_ssp.hpp`): version 1 or 2, then two octets: CenDsrcTollingZone,
//!   publicTransport, specialTransport, dangerousGoods, roadwork, rescue, emergency, safetyCar;
//!   closedLanes, requestForRightOfWay, requestForFreeCrossingAtATrafficLight, noPassing,
//!   noPassingForTrucks, speedLimit and two bits not used here. Each special vehicle container
//!   needs its bit; the emergency priority bits, a safety car's traffic rule and speed limit,
//!   roadworks' closed lanes and an RSU's protected communication zones need theirs.
//! * DENM (ITS-AID 37; TS 103 831 V2.2.1 §6.2.2.2): version 1 (three octets after it) or 2
//!   (four), one bit per cause code of the event type; a cause code without a bit cannot be
//!   granted.
//!
//! A ticket without an SSP for the message's ITS-AID grants none of these; an SSP of an
//! unknown version grants none either (its bits cannot be read).

use serde::{Deserialize, Serialize};

use crate::cam_v2::{Cam, HighFrequencyContainer, SpecialVehicleContainer};
use crate::denm_v2::Denm;

/// Something a CAM or DENM says that its signer's SSP must grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Permission {
    /// CAM: an RSU's protected communication zones.
    CenDsrcTollingZone,
    /// CAM: public transport container.
    PublicTransport,
    /// CAM: special transport container.
    SpecialTransport,
    /// CAM: dangerous goods container.
    DangerousGoods,
    /// CAM: roadworks container.
    Roadwork,
    /// CAM: rescue container.
    Rescue,
    /// CAM: emergency container.
    Emergency,
    /// CAM: safety car container.
    SafetyCar,
    /// CAM: closed lanes of a roadworks container.
    ClosedLanes,
    /// CAM: emergency priority `requestForRightOfWay`.
    RequestForRightOfWay,
    /// CAM: emergency priority `requestForFreeCrossingAtATrafficLight`.
    RequestForFreeCrossingAtATrafficLight,
    /// CAM: a safety car's traffic rule `noPassing`.
    NoPassing,
    /// CAM: a safety car's traffic rule `noPassingForTrucks`.
    NoPassingForTrucks,
    /// CAM: a safety car's speed limit.
    SpeedLimit,
    /// DENM: an event of this cause code.
    DenmCause(u8),
}

/// ITS-AID of the CA service.
pub const CAM_PSID: u64 = 36;
/// ITS-AID of the DEN service.
pub const DENM_PSID: u64 = 37;

/// DENM cause codes with an SSP bit: (cause code, octet after the version, mask).
const DENM_BITS: [(u8, usize, u8); 28] = [
    (1, 1, 0x80),
    (2, 1, 0x40),
    (3, 1, 0x20),
    (6, 1, 0x10),
    (9, 1, 0x08),
    (10, 1, 0x04),
    (11, 1, 0x02),
    (12, 1, 0x01),
    (14, 2, 0x80),
    (15, 2, 0x40),
    (17, 2, 0x20),
    (18, 2, 0x10),
    (19, 2, 0x08),
    (26, 2, 0x04),
    (27, 2, 0x02),
    (91, 2, 0x01),
    (92, 3, 0x80),
    (93, 3, 0x40),
    (94, 3, 0x20),
    (95, 3, 0x10),
    (96, 3, 0x08),
    (97, 3, 0x04),
    (98, 3, 0x02),
    (99, 3, 0x01),
    (5, 4, 0x80),
    (7, 4, 0x40),
    (28, 4, 0x20),
    (100, 4, 0x10),
];

impl Permission {
    /// The ITS-AID whose SSP grants it.
    #[must_use]
    pub const fn psid(self) -> u64 {
        match self {
            Self::DenmCause(_) => DENM_PSID,
            _ => CAM_PSID,
        }
    }

    /// Its bit: octet index (the version octet is 0) and mask; `None` for a DENM cause code
    /// that no SSP can grant.
    #[must_use]
    pub fn bit(self) -> Option<(usize, u8)> {
        Some(match self {
            Self::CenDsrcTollingZone => (1, 0x80),
            Self::PublicTransport => (1, 0x40),
            Self::SpecialTransport => (1, 0x20),
            Self::DangerousGoods => (1, 0x10),
            Self::Roadwork => (1, 0x08),
            Self::Rescue => (1, 0x04),
            Self::Emergency => (1, 0x02),
            Self::SafetyCar => (1, 0x01),
            Self::ClosedLanes => (2, 0x80),
            Self::RequestForRightOfWay => (2, 0x40),
            Self::RequestForFreeCrossingAtATrafficLight => (2, 0x20),
            Self::NoPassing => (2, 0x10),
            Self::NoPassingForTrucks => (2, 0x08),
            Self::SpeedLimit => (2, 0x04),
            Self::DenmCause(c) => return DENM_BITS.iter().find(|(cause, _, _)| *cause == c).map(|&(_, o, m)| (o, m)),
        })
    }

    /// Whether `ssp` (the signer's SSP for [`Self::psid`], `None` when it has none) grants it.
    #[must_use]
    pub fn granted_by(self, ssp: Option<&[u8]>) -> bool {
        let (Some(ssp), Some((octet, mask))) = (ssp, self.bit()) else {
            return false;
        };
        // the octets each version has after the version octet: CAM 2 in versions 1 and 2; DENM
        // 3 in version 1, 4 in version 2 (a longer version 1 SSP grants nothing past them)
        let octets = match (self, ssp.first()) {
            (Self::DenmCause(_), Some(1)) => 3,
            (Self::DenmCause(_), Some(2)) => 4,
            (_, Some(1 | 2)) => 2,
            _ => return false,
        };
        octet <= octets && ssp.get(octet).is_some_and(|b| b & mask != 0)
    }
}

/// What a CAM says that needs a permission (nothing for an ordinary vehicle's CAM).
#[must_use]
pub fn cam_needs(cam: &Cam) -> Vec<Permission> {
    let mut out = Vec::new();
    let p = &cam.cam.cam_parameters;
    if let HighFrequencyContainer::Rsu(rsu) = &p.high_frequency_container
        && rsu.protected_communication_zones_rsu.is_some()
    {
        out.push(Permission::CenDsrcTollingZone);
    }
    match &p.special_vehicle_container {
        None => {}
        Some(SpecialVehicleContainer::PublicTransport(_)) => out.push(Permission::PublicTransport),
        Some(SpecialVehicleContainer::SpecialTransport(_)) => out.push(Permission::SpecialTransport),
        Some(SpecialVehicleContainer::DangerousGoods(_)) => out.push(Permission::DangerousGoods),
        Some(SpecialVehicleContainer::RoadWorks(r)) => {
            out.push(Permission::Roadwork);
            if r.closed_lanes.is_some() {
                out.push(Permission::ClosedLanes);
            }
        }
        Some(SpecialVehicleContainer::Rescue(_)) => out.push(Permission::Rescue),
        Some(SpecialVehicleContainer::Emergency(e)) => {
            out.push(Permission::Emergency);
            if let Some(priority) = &e.emergency_priority {
                // EmergencyPriority ::= BIT STRING { requestForRightOfWay(0),
                // requestForFreeCrossingAtATrafficLight(1) } (SIZE(2))
                if priority.0.first().is_some_and(|b| *b) {
                    out.push(Permission::RequestForRightOfWay);
                }
                if priority.0.get(1).is_some_and(|b| *b) {
                    out.push(Permission::RequestForFreeCrossingAtATrafficLight);
                }
            }
        }
        Some(SpecialVehicleContainer::SafetyCar(s)) => {
            use c_its_parser::standards::cdd_2_2_1::etsi_its_cdd::TrafficRule;
            out.push(Permission::SafetyCar);
            match s.traffic_rule {
                Some(TrafficRule::noPassing) => out.push(Permission::NoPassing),
                Some(TrafficRule::noPassingForTrucks) => out.push(Permission::NoPassingForTrucks),
                _ => {}
            }
            if s.speed_limit.is_some() {
                out.push(Permission::SpeedLimit);
            }
        }
    }
    out
}

/// What a DENM says that needs a permission: its event's cause code (nothing for a
/// termination, which carries no situation).
#[must_use]
pub fn denm_needs(denm: &Denm) -> Vec<Permission> {
    denm.denm.situation.as_ref().map(|s| Permission::DenmCause(cause_code(&s.event_type.cc_and_scc))).into_iter().collect()
}

/// The cause code of a `CauseCodeChoice` alternative (its number in the ASN.1 name).
fn cause_code(c: &c_its_parser::standards::cdd_2_2_1::etsi_its_cdd::CauseCodeChoice) -> u8 {
    use c_its_parser::standards::cdd_2_2_1::etsi_its_cdd::CauseCodeChoice as C;
    match c {
        C::trafficCondition1(_) => 1,
        C::accident2(_) => 2,
        C::roadworks3(_) => 3,
        C::impassability5(_) => 5,
        C::adverseWeatherCondition_Adhesion6(_) => 6,
        C::aquaplaning7(_) => 7,
        C::hazardousLocation_SurfaceCondition9(_) => 9,
        C::hazardousLocation_ObstacleOnTheRoad10(_) => 10,
        C::hazardousLocation_AnimalOnTheRoad11(_) => 11,
        C::humanPresenceOnTheRoad12(_) => 12,
        C::wrongWayDriving14(_) => 14,
        C::rescueAndRecoveryWorkInProgress15(_) => 15,
        C::adverseWeatherCondition_ExtremeWeatherCondition17(_) => 17,
        C::adverseWeatherCondition_Visibility18(_) => 18,
        C::adverseWeatherCondition_Precipitation19(_) => 19,
        C::violence20(_) => 20,
        C::slowVehicle26(_) => 26,
        C::dangerousEndOfQueue27(_) => 27,
        C::publicTransportVehicleApproaching28(_) => 28,
        C::vehicleBreakdown91(_) => 91,
        C::postCrash92(_) => 92,
        C::humanProblem93(_) => 93,
        C::stationaryVehicle94(_) => 94,
        C::emergencyVehicleApproaching95(_) => 95,
        C::hazardousLocation_DangerousCurve96(_) => 96,
        C::collisionRisk97(_) => 97,
        C::signalViolation98(_) => 98,
        C::dangerousSituation99(_) => 99,
        C::railwayLevelCrossing100(_) => 100,
        // reserved codes: no SSP bit, so never granted (0 has none either)
        _ => 0,
    }
}

/// The permissions among `needs` that `ssps` (the signer's SSP per ITS-AID, opaque or bitmap:
/// ETSI reads both as the same octets) does not grant.
#[must_use]
pub fn missing(needs: &[Permission], ssps: &[(u64, crate::security::Ssp)]) -> Vec<Permission> {
    needs
        .iter()
        .copied()
        .filter(|p| !p.granted_by(ssps.iter().find(|(psid, _)| *psid == p.psid()).map(|(_, s)| s.bytes())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_follow_the_etsi_tables() {
        // an emergency vehicle's ticket: version 1, emergency + requestForRightOfWay
        let ssp = [1, 0x02, 0x40];
        assert!(Permission::Emergency.granted_by(Some(&ssp)));
        assert!(Permission::RequestForRightOfWay.granted_by(Some(&ssp)));
        assert!(!Permission::RequestForFreeCrossingAtATrafficLight.granted_by(Some(&ssp)));
        assert!(!Permission::SafetyCar.granted_by(Some(&ssp)));
        assert!(!Permission::Emergency.granted_by(None), "no SSP grants nothing");
        assert!(!Permission::Emergency.granted_by(Some(&[3, 0xff, 0xff])), "unknown version");
        assert!(!Permission::Emergency.granted_by(Some(&[1])), "truncated");
        // DENM: accident (2) is octet 1 mask 0x40; railwayLevelCrossing (100) exists in v2 only
        assert!(Permission::DenmCause(2).granted_by(Some(&[1, 0x40, 0, 0])));
        assert!(!Permission::DenmCause(100).granted_by(Some(&[1, 0xff, 0xff, 0xff])));
        assert!(Permission::DenmCause(100).granted_by(Some(&[2, 0, 0, 0, 0x10])));
        assert!(!Permission::DenmCause(100).granted_by(Some(&[1, 0, 0, 0, 0x10])), "version 1 has three octets");
        assert!(!Permission::DenmCause(20).granted_by(Some(&[2, 0xff, 0xff, 0xff, 0xff])), "no bit for violence");
        // every DENM bit is distinct
        let mut seen: Vec<(usize, u8)> = DENM_BITS.iter().map(|&(_, o, m)| (o, m)).collect();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), DENM_BITS.len());
        let need = [Permission::Emergency, Permission::DenmCause(2)];
        assert_eq!(missing(&need, &[(36, crate::security::Ssp::Bitmap(ssp.to_vec()))]), vec![Permission::DenmCause(2)]);
    }
}
