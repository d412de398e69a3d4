//! Links, addresses, routes and policy-routing rules over rtnetlink.
