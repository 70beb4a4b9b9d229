"""Protocol profiles: isolation lengths, test days, contact rules and zone rules as versioned,
dated data. A deployment chooses a profile from a date on; the profile in force on a date
decides (:func:`bastion.protocols.service.profile_on`)."""
