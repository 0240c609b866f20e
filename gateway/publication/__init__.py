"""What leaves the gateway: the public pages, open data, Decidim, the radio and the report.

``records`` decides what of a contribution is public; every output reads through it.
"""
