"""Isolation sites, beds, placements, test days, releases and transfers."""
