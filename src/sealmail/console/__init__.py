"""The web admin console a clinic runs its secure mail from (served at ``/console``)."""
