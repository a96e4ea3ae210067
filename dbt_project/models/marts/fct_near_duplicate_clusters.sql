-- One row per document in a near-duplicate cluster (word 5-gram Jaccard >= the profile's
-- near_dedup.threshold, found by MinHash LSH): which cluster, whether it is the kept one, its
-- estimated similarity to the kept one, and its category and source. Documents in no cluster
-- have no row.
with clusters as (
    select * from {{ ref('stg_forge__near_duplicate_clusters') }}
),

final as (
    select
        cluster_id,
        doc_id,
        is_kept,
        kept_doc_id,
        similarity_to_kept,
        n_cluster_documents,
        category,
        source,
        n_chars
    from clusters
)

select * from final
