"""Lab records kept around sessions, day after day: the animal registry, weights, water, notes, the rig's
calibration and check history, and the daily log that reads them all. Layout in docs/lab-records.md.

    DATA/ANIMAL/animal.yaml        the registry record (rig.lab.subjects)
    DATA/ANIMAL/registry.jsonl     every creation and change of it
    DATA/ANIMAL/weights.jsonl      body weights (rig.lab.weights)
    DATA/ANIMAL/water.jsonl        water supplements (rig.lab.water)
    DATA/ANIMAL/notes.jsonl        notes (rig.lab.notes)
    DATA/rig-NAME.history.jsonl    calibrations, checks and primes of rig NAME (rig.lab.rig_history)

Every .jsonl file is append-only (rig.lab.journal); session folders are never written here.
"""
