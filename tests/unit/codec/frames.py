"""A realistic data frame for each catalog decoder, with the JSON it must give.

Each frame is written with schema names and the raw values firmware puts on
the wire (scaled integers, enum indexes, series arrays); `catalog.frame`
numbers and encodes it. The expected JSON is written out by hand.
"""

from __future__ import annotations

Frame = tuple[dict[str, object], dict[str, object]]
"""A frame written with names and raw wire values, and the JSON it decodes to."""

T = 1713352118
W1_SERIAL = 0x28FF641E8316044B  # a 1-Wire ROM code: beyond 2^53, so it decodes as text

MESSAGE = {"version": 2, "sequence": 69, "timestamp": T}
SYSTEM = {"uptime": 680967, "voltage_rest": 3640, "voltage_load": 3500, "current_load": 25}
SYSTEM_JSON = {"uptime": 680967, "voltage_rest": 3.64, "voltage_load": 3.5, "current_load": 25}
PARAMETER = {
    "eest": 7,
    "ecl": 0,
    "rsrp": -95,
    "rsrq": -6,
    "snr": 2,
    "plmn": 23003,
    "cid": 658209,
    "band": 20,
    "earfcn": 6447,
}
NETWORK = {"parameter": PARAMETER}
THERMOMETER = {"temperature": 2243}
THERMOMETER_JSON = {"temperature": 22.43}
ACCEL = {"accel_x": 220, "accel_y": 9800, "accel_z": -150, "orientation": 3}
ACCEL_JSON = {"accel_x": 0.22, "accel_y": 9.8, "accel_z": -0.15, "orientation": 3}
ACCELERATION = {f"acceleration_{axis}": ACCEL[f"accel_{axis}"] for axis in "xyz"} | {
    "orientation": 3
}
ACCELERATION_JSON = {f"acceleration_{a}": ACCEL_JSON[f"accel_{a}"] for a in "xyz"} | {
    "orientation": 3
}
ATTRIBUTE = {
    "vendor_name": "HARDWARIO",
    "product_name": "CHESTER-M",
    "hw_variant": "CDGLS",
    "hw_revision": "R3.2",
    "fw_version": "v3.1.0",
    "serial_number": "2159017985",
}

# [t0, period, min, max, avg, mdn] x 2 points, the second with an unavailable value
TSP4 = [T - 1200, 600, 2207, 2225, 2217, 2217, 2230, 2250, None, 2240]
TSP4_JSON = [
    {"timestamp": T - 1200, "min": 22.07, "max": 22.25, "avg": 22.17, "mdn": 22.17},
    {"timestamp": T - 600, "min": 22.3, "max": 22.5, "avg": None, "mdn": 22.4},
]
TSP4_RAW = [T - 600, 600, 1, 5, 3, 2]
TSP4_RAW_JSON = [{"timestamp": T - 600, "min": 1, "max": 5, "avg": 3, "mdn": 2}]
BLE_TAG = {
    "addr": bytes.fromhex("c0ffee001122"),
    "rssi": -71,
    "voltage": 301,
    "temperature": {"measurements": [T - 600, 600, 2101, 2120, 2110, 2110]},
}
BLE_TAG_JSON = {
    "addr": "c0ffee001122",
    "rssi": -71,
    "voltage": 3.01,
    "temperature": {
        "measurements": [
            {"timestamp": T - 600, "min": 21.01, "max": 21.2, "avg": 21.1, "mdn": 21.1}
        ]
    },
}
# $tso [t_abs, off, type]: two events, offsets relative to t_abs (not cumulative)
EVENTS = [T - 900, 0, 0, 300, 1]
EVENTS_JSON = [
    {"timestamp": T - 900, "type": "disconnected"},
    {"timestamp": T - 600, "type": "connected"},
]

CLIME: Frame = (
    {
        "message": MESSAGE,
        "system": SYSTEM,
        "network": NETWORK,
        "thermometer": THERMOMETER,
        "accelerometer": ACCEL,
        "iaq_sensor": {
            "co2_conc": {"measurements": [T - 600, 600, 410, 530, None, 450]},
            "motion_count": {"measurements": [T - 1200, 600, 4, 0]},
        },
        "w1_thermometers": [
            {"serial_number": W1_SERIAL, "measurements": TSP4},
            {"serial_number": 17, "measurements": []},
        ],
        "tamper": {"state": 0, "events": [T - 60, 0, 1, 30, 0]},
        "backup": {
            "line_voltage": 24010,
            "batt_voltage": 4090,
            "state": 1,
            "backup.state.events": EVENTS,  # placed beside `state`, as Clime does
        },
        "ble_tags": [BLE_TAG],
    },
    {
        "message": MESSAGE,
        "system": SYSTEM_JSON,
        "network": NETWORK,
        "thermometer": THERMOMETER_JSON,
        "accelerometer": ACCEL_JSON,
        "iaq_sensor": {
            "co2_conc": {
                "measurements": [
                    {"timestamp": T - 600, "min": 410, "max": 530, "avg": None, "mdn": 450}
                ]
            },
            "motion_count": {
                "measurements": [
                    {"timestamp": T - 1200, "value": 4},
                    {"timestamp": T - 600, "value": 0},
                ]
            },
        },
        "w1_thermometers": [
            {"serial_number": "2954189962789389387", "measurements": TSP4_JSON},
            {"serial_number": 17, "measurements": []},
        ],
        "tamper": {
            "state": "inactive",
            "events": [
                {"timestamp": T - 60, "type": "activated"},
                {"timestamp": T - 30, "type": "deactivated"},
            ],
        },
        "backup": {
            "line_voltage": 24.01,
            "batt_voltage": 4.09,
            "state": "connected",
            "events": EVENTS_JSON,
        },
        "ble_tags": [BLE_TAG_JSON],
    },
)

CONTROL: Frame = (
    {
        "message": MESSAGE,
        "system": SYSTEM,
        "backup": {"line_voltage": 0, "batt_voltage": 3990, "state": 0, "events": []},
        "trigger": [
            {"channel": 1, "state": 1, "events": [T - 10, 0, 1]},
            {"channel": 2, "state": 0, "events": []},
        ],
        "counter": [
            {
                "channel": 1,
                "value": 1503,
                "delta": 12,
                "measurements": [T - 120, 60, 1491, 5, 1503, 7],
            }
        ],
        "voltage": [{"channel": 1, "measurements_div": [T - 600, 600, 1190, 1210, 1200, 1201]}],
        "hygrometer": {"temperature": {"measurements_div": [T - 600, 600, -512, -498, -505, -505]}},
    },
    {
        "message": MESSAGE,
        "system": SYSTEM_JSON,
        "backup": {
            "line_voltage": 0.0,
            "batt_voltage": 3.99,
            "state": "disconnected",
            "events": [],
        },
        "trigger": [
            {
                "channel": 1,
                "state": "active",
                "events": [{"timestamp": T - 10, "type": "activated"}],
            },
            {"channel": 2, "state": "inactive", "events": []},
        ],
        "counter": [
            {
                "channel": 1,
                "value": 1503,
                "delta": 12,
                "measurements": [
                    {"timestamp": T - 120, "value": 1491, "delta": 5},
                    {"timestamp": T - 60, "value": 1503, "delta": 7},
                ],
            }
        ],
        "voltage": [
            {
                "channel": 1,
                "measurements": [
                    {"timestamp": T - 600, "min": 11.9, "max": 12.1, "avg": 12.0, "mdn": 12.01}
                ],
            }
        ],
        "hygrometer": {
            "temperature": {
                "measurements": [
                    {"timestamp": T - 600, "min": -5.12, "max": -4.98, "avg": -5.05, "mdn": -5.05}
                ]
            }
        },
    },
)

CURRENT: Frame = (
    {
        "message": MESSAGE,
        "backup": {"state": 1, "events": EVENTS},
        "analog_channels": [
            {
                "channel": 1,
                "raw_rms": {"measurements_div": [T - 600, 600, 120, 180, 150, 149]},
                "calibration": {"mode": 1, "measurements_div": []},
            }
        ],
        "w1_thermometers": [{"serial_number": 5, "measurements_div": TSP4}],
    },
    {
        "message": MESSAGE,
        "backup": {"state": "connected", "events": EVENTS_JSON},
        "analog_channels": [
            {
                "channel": 1,
                "raw_rms": {
                    "measurements": [
                        {"timestamp": T - 600, "min": 1.2, "max": 1.8, "avg": 1.5, "mdn": 1.49}
                    ]
                },
                "calibration": {"mode": "rms", "measurements": []},
            }
        ],
        "w1_thermometers": [{"serial_number": 5, "measurements": TSP4_JSON}],
    },
)

DEMO: Frame = (
    {
        "message": MESSAGE,
        "system": SYSTEM,
        "attribute": ATTRIBUTE,
        "network": NETWORK,
        "thermometer": {"temperature": None},
        "accelerometer": ACCELERATION,
    },
    {
        "message": MESSAGE,
        "system": SYSTEM_JSON,
        "attribute": ATTRIBUTE,
        "network": NETWORK,
        "thermometer": {"temperature": None},
        "accelerometer": ACCELERATION_JSON,
    },
)

METEO: Frame = (
    {
        "message": MESSAGE,
        "attribute": ATTRIBUTE,
        "accelerometer": ACCELERATION,
        "barometer": {"pressure": {"measurements": [T - 600, 600, 98000, 98100, 98050, 98049]}},
        "weather_station": {
            "wind_speed": {"measurements": TSP4},
            "rainfall": {"measurements": [T - 1800, 900, 0, 250]},
        },
        "lambrecht_weather_station": {"rainfall_total": 1234, "illuminance": {"measurements": []}},
        "cubic_pm": {"tsp": {"measurements": TSP4_RAW}},
    },
    {
        "message": MESSAGE,
        "attribute": ATTRIBUTE,
        "accelerometer": ACCELERATION_JSON,
        "barometer": {
            "pressure": {
                "measurements": [
                    {"timestamp": T - 600, "min": 98000, "max": 98100, "avg": 98050, "mdn": 98049}
                ]
            }
        },
        "weather_station": {
            "wind_speed": {"measurements": TSP4_JSON},
            "rainfall": {
                "measurements": [
                    {"timestamp": T - 1800, "value": 0.0},
                    {"timestamp": T - 900, "value": 2.5},
                ]
            },
        },
        "lambrecht_weather_station": {"rainfall_total": 1234, "illuminance": {"measurements": []}},
        "cubic_pm": {"tsp": {"measurements": TSP4_RAW_JSON}},
    },
)

MOTION: Frame = (
    {
        "message": MESSAGE,
        "motion": {
            "totalizer": {
                "detect_left": 10,
                "detect_right": 12,
                "motion_left": 3,
                "motion_right": 4,
            },
            "samples": [T - 120, 0, 1, 0, 1, 0, 60, 0, 2, 0, 1],
        },
    },
    {
        "message": MESSAGE,
        "motion": {
            "totalizer": {
                "detect_left": 10,
                "detect_right": 12,
                "motion_left": 3,
                "motion_right": 4,
            },
            "samples": [
                {
                    "timestamp": T - 120,
                    "detect_left": 1,
                    "detect_right": 0,
                    "motion_left": 1,
                    "motion_right": 0,
                },
                {
                    "timestamp": T - 60,
                    "detect_left": 0,
                    "detect_right": 2,
                    "motion_left": 0,
                    "motion_right": 1,
                },
            ],
        },
    },
)

PUSH: Frame = (
    {
        "message": MESSAGE,
        "backup": {"line_voltage": 24010, "batt_voltage": 4090, "state": 1, "events": []},
        "buttons": [
            {"button": 1, "count_click": 3, "count_hold": 0, "events": [T - 5, 0, 0, 2, 0, 4, 1]},
            {"button": 7, "count_click": 0, "count_hold": 0, "events": []},
        ],
    },
    {
        "message": MESSAGE,
        "backup": {"line_voltage": 24010, "batt_voltage": 4090, "state": "connected", "events": []},
        "buttons": [
            {
                "button": "button_1",
                "count_click": 3,
                "count_hold": 0,
                "events": [
                    {"timestamp": T - 5, "type": "clicked"},
                    {"timestamp": T - 3, "type": "clicked"},
                    {"timestamp": T - 1, "type": "held"},
                ],
            },
            {"button": "(enum:7)", "count_click": 0, "count_hold": 0, "events": []},
        ],
    },
)

RANGE: Frame = (
    {
        "message": MESSAGE,
        "hygrometer": {
            "temperature": {"events": [T - 30, 0, 1], "measurements": [T - 600, 600, 2150]},
            "humidity": {"measurements": [T - 600, 600, 4512]},
        },
        "ultrasonic_ranger": {"measurements": [T - 600, 600, 51234, 51300, 51250, 51250]},
    },
    {
        "message": MESSAGE,
        "hygrometer": {
            "temperature": {
                "events": [{"timestamp": T - 30, "type": "connected"}],
                "measurements": [{"timestamp": T - 600, "value": 21.5}],
            },
            "humidity": {"measurements": [{"timestamp": T - 600, "value": 45.12}]},
        },
        "ultrasonic_ranger": {
            "measurements": [
                {"timestamp": T - 600, "min": 512.34, "max": 513.0, "avg": 512.5, "mdn": 512.5}
            ]
        },
    },
)

PEOPLE = list(range(10, 20))
SCALE: Frame = (
    {
        "message": MESSAGE,
        "attribute": ATTRIBUTE,
        "weight": [T - 60, 0, 1000, 1001, 1002, 1003, 30, 2000, 2001, None, 2003],
        "people_counter": [T - 60, 0, *PEOPLE],
    },
    {
        "message": MESSAGE,
        "attribute": ATTRIBUTE,
        "weight": [
            {
                "timestamp": T - 60,
                "raw_result_a1": 1000,
                "raw_result_a2": 1001,
                "raw_result_b1": 1002,
                "raw_result_b2": 1003,
            },
            {
                "timestamp": T - 30,
                "raw_result_a1": 2000,
                "raw_result_a2": 2001,
                "raw_result_b1": None,
                "raw_result_b2": 2003,
            },
        ],
        "people_counter": [
            {
                "timestamp": T - 60,
                "motion_counter": 10,
                "pass_counter_left": 11,
                "pass_counter_right": 12,
                "pass_counter_adult": 13,
                "pass_counter_child": 14,
                "stay_counter_adult": 15,
                "stay_counter_child": 16,
                "total_time_adult": 17,
                "total_time_child": 18,
                "consumed_energy": 19,
            }
        ],
    },
)

SERIAL: Frame = (
    {
        "message": MESSAGE,
        "devices": [
            {
                "device": 0,
                "type": 3,
                "type_name": "em1xx",
                "addr": 1,
                "data": {
                    "timestamp": T - 10,
                    "co2_percent": 7,
                    "pressure": 10133,
                    "voltage_l1": 23012,
                    "current_l1": 1234,
                    "flow_s": 12345,
                    "card_uid": bytes.fromhex("04a224b2c65f80"),
                    "power_factor": 0.98,
                },
            }
        ],
    },
    {
        "message": MESSAGE,
        "devices": [
            {
                "device": 0,
                "type": 3,
                "type_name": "em1xx",
                "addr": 1,
                "data": {
                    "timestamp": T - 10,
                    "co2_percent": 0.007,
                    "pressure": 1013.3,
                    "voltage_l1": 230.12,
                    "current_l1": 1.234,
                    "flow_s": 1.2345,
                    "card_uid": "04a224b2c65f80",
                    "power_factor": 0.98,
                },
            }
        ],
    },
)

IMEI = 351358815178344
IMSI = 230038123456789
WMBUS: Frame = (
    {
        "frame": {"protocol": 1, "sequence": 4, "timestamp": T},
        "state": {"uptime": 3600},
        "battery": {"voltage_rest": 3650, "voltage_load": 3520, "current_load": 41},
        "network": {"imei": IMEI, "imsi": IMSI, "parameter": PARAMETER},
        "wmbus": {
            "scan_mode": 2,
            "scan_ant": 1,
            "received": 2,
            "packets_cloud_decode": [bytes.fromhex("1e44a5110101"), bytes.fromhex("ff")],
        },
    },
    {
        "frame": {"protocol": 1, "sequence": 4, "timestamp": T},
        "state": {"uptime": 3600},
        "battery": {"voltage_rest": 3.65, "voltage_load": 3.52, "current_load": 41},
        "network": {"imei": IMEI, "imsi": IMSI, "parameter": PARAMETER},
        "wmbus": {
            "scan_mode": "daily",
            "scan_ant": "dual",
            "received": 2,
            "packets": ["1e44a5110101", "ff"],  # $key renames; $wmbus keeps the frames as hex
        },
    },
)

FRAMES: dict[str, Frame] = {
    "clime.decoder.yaml": CLIME,
    "control.decoder.yaml": CONTROL,
    "current.decoder.yaml": CURRENT,
    "demo.decoder.yaml": DEMO,
    "meteo.decoder.yaml": METEO,
    "motion.decoder.yaml": MOTION,
    "push.decoder.yaml": PUSH,
    "range.decoder.yaml": RANGE,
    "scale.decoder.yaml": SCALE,
    "serial.decoder.yaml": SERIAL,
    "wmbus.decoder.yaml": WMBUS,
}
