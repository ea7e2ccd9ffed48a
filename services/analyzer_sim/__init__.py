"""mlpower.analyzer_sim"""
